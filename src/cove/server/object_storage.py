"""The official SDK's build contexts through an S3-compatible store (`cove[s3]`).

    GET /object-storage/push-access   where the SDK uploads: Daytona's StorageAccessDto

The official SDK tars each `add_local_file`/`add_local_dir`/COPY source,
uploads it as `<organizationId>/<md5>/context.tar` (skipped when a HEAD finds
it) and sends the hashes as `buildInfo.contextHashes`. Cove checks at the
request that each is in the caller's own prefix (a clear 400 otherwise),
then the build fetches and unpacks them into one context directory
(`images.context`), which COPY sees exactly as a Cove SDK's direct context.

`organizationId` is derived from the API key's id (the hash the server
keeps), so a key's builds read only what that key uploaded: another key's
hash is simply not found under this prefix. Which credentials the SDK gets
is the self-hoster's choice (docs/images.md): with COVE_OBJECT_STORAGE_ROLE_ARN,
short-lived ones scoped to the caller's prefix (`sts.py`); else the
configured key, only with COVE_OBJECT_STORAGE_SHARE_KEY=1, because every API
key holder then holds it and can read the whole bucket with it.

Without COVE_OBJECT_STORAGE_URL there is no store: push-access is a 501 and
`contextHashes` a 400, both saying that the Cove SDK and `cove build` send
the context straight to the server.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cove.images.context import CONTEXT_LIMIT, unpack_context
from cove.server.sts import RoleCredentials
from cove.settings import Settings
from cove.wire.errors import BadRequest, CoveError, PayloadTooLarge, Unsupported
from cove.wire.protocol import StorageAccess

if TYPE_CHECKING:
    from obstore.store import ClientConfig

FIELD = "buildInfo.contextHashes"
DIRECT = "the Cove SDK (`client.images.build`) and `cove build` send the context directly"
NO_STORE = (
    "build contexts through object storage need a store this server is not configured "
    f"with (COVE_OBJECT_STORAGE_URL); {DIRECT}"
)
HASH = re.compile(r"[0-9a-f]{32}")  # the SDK's md5 of a source's path and content
CHUNK = 1 << 20


def organization_id(owner: str) -> str:
    """A key's prefix in the bucket, from the key's id (its hash), never from the key."""
    return hashlib.sha256(b"cove build context prefix\0" + owner.encode()).hexdigest()[:32]


class StoreError(CoveError):
    """The object store failed (unreachable, refused our key): the message says which call."""

    status = 502
    code = "OBJECT_STORAGE_ERROR"


class ContextStore:
    """The configured S3-compatible store (or none), and the push-access route."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store: Any = None
        self.roles: RoleCredentials | None = None
        if settings.object_storage_url:
            self.store = _open_store(settings)
            if settings.object_storage_role_arn:
                self.roles = RoleCredentials(settings)

    def routes(self) -> list[Route]:
        return [Route("/object-storage/push-access", self.push_access, methods=["GET"])]

    async def push_access(self, request: Request) -> Response:
        s = self.settings
        if self.store is None:
            raise Unsupported(NO_STORE)
        org = organization_id(str(request.state.owner))
        if self.roles is not None:
            return JSONResponse((await self.roles.for_org(org)).to_wire())
        if s.object_storage_share_key != "1":
            raise Unsupported(
                "this server hands out no object store credentials (set "
                "COVE_OBJECT_STORAGE_ROLE_ARN for scoped ones, or COVE_OBJECT_STORAGE_SHARE_KEY=1 "
                f"to share its key; docs/images.md); {DIRECT}"
            )
        access = StorageAccess(
            access_key=s.object_storage_access_key,
            secret=s.object_storage_secret_key,
            session_token="",
            storage_url=s.object_storage_url,
            organization_id=org,
            bucket=s.object_storage_bucket,
            region=s.object_storage_region,
        )
        return JSONResponse(access.to_wire())

    def hashes(self, value: Any) -> list[str]:
        """`buildInfo.contextHashes` checked: a list of the SDK's hashes, and a store for them."""
        if value is None or value == []:
            return []
        if not isinstance(value, list) or not all(
            isinstance(h, str) and HASH.fullmatch(h) for h in value
        ):
            raise BadRequest(f"field '{FIELD}' must be a list of 32-character hex md5 hashes")
        if self.store is None:
            raise BadRequest(f"field '{FIELD}': {NO_STORE}")
        return list(dict.fromkeys(value))  # the same source twice is one tar

    def _key(self, owner: str, digest: str) -> str:
        return f"{organization_id(owner)}/{digest}/context.tar"

    async def check(self, owner: str, hashes: Sequence[str]) -> None:
        """A 400 now for a hash this key did not upload (another key's is not under its prefix)."""
        if not hashes:
            return  # every create passes here: obstore is imported only for a store's contexts
        import obstore
        from obstore.exceptions import BaseError

        for digest in hashes:
            try:
                await obstore.head_async(self.store, self._key(owner, digest))
            except FileNotFoundError:
                raise BadRequest(
                    f"field '{FIELD}': no build context {digest} was uploaded with this API key "
                    "(each key uploads to its own organizationId from push-access)"
                ) from None
            except BaseError as exc:  # the store's fault, not the caller's
                raise StoreError(
                    f"the object store refused HEAD of a build context: {exc}"
                ) from exc

    def fetcher(
        self, owner: str, hashes: Sequence[str]
    ) -> Callable[[Path], Awaitable[None]] | None:
        """A build's `fetch` for `owner`'s hashes (BuildService.start); None without any."""
        return functools.partial(self.fetch, owner, hashes) if hashes else None

    async def fetch(self, owner: str, hashes: Sequence[str], dest: Path) -> None:
        """Download the caller's tars next to `dest` and unpack them into it."""
        import obstore
        from obstore.exceptions import BaseError

        dest.mkdir()
        tars: list[Path] = []
        total = 0
        try:
            for digest in hashes:
                path = dest.parent / f"{digest}.tar"
                try:
                    result = await obstore.get_async(self.store, self._key(owner, digest))
                except FileNotFoundError:
                    raise BadRequest(
                        f"build context {digest} is gone from the object store"
                    ) from None
                except BaseError as exc:
                    raise StoreError(f"fetching build context {digest} failed: {exc}") from exc
                with open(path, "wb") as f:
                    async for chunk in result.stream(min_chunk_size=CHUNK):
                        total += len(chunk)
                        if total > CONTEXT_LIMIT:
                            raise PayloadTooLarge(
                                f"the build context exceeds {CONTEXT_LIMIT} bytes of tar"
                            )
                        f.write(memoryview(chunk))
                tars.append(path)
            await asyncio.to_thread(unpack_context, tars, dest)
        finally:
            for path in tars:
                path.unlink(missing_ok=True)


def _open_store(settings: Settings) -> Any:
    try:
        from obstore.store import S3Store
    except ImportError:
        raise ValueError(
            "COVE_OBJECT_STORAGE_URL needs the s3 extra: pip install 'cove[s3]'"
        ) from None
    options: ClientConfig = {}  # a TypedDict of the stubs only
    if settings.object_storage_ca_bundle is not None:
        # Added to the trusted roots, for a store behind a private CA.
        options["root_certificate"] = Path(settings.object_storage_ca_bundle).read_text()
    return S3Store(
        settings.object_storage_bucket,
        endpoint=settings.object_storage_url,
        region=settings.object_storage_region,
        access_key_id=settings.object_storage_access_key,
        secret_access_key=settings.object_storage_secret_key,
        client_options=options,
    )
