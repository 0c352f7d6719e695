"""`Cove` and `AsyncCove`: the clients, named and shaped like Daytona's.

Configuration (`api_url`, `api_key`, or `COVE_API_URL` / `COVE_API_KEY`)
picks a server; with no URL at all, the client runs embedded (see
`embedded.py`). A client used as a context manager, or closed, deletes the
sandboxes it created unless it was made with `keep=True`; an embedded client
that is never closed does the same at interpreter exit, because its control
plane ends with the process.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from cove.sdk import embedded
from cove.sdk._base import CoveConfig, Endpoints, default_embedded_dir, headers
from cove.sdk._transport import AsyncTransport, SyncTransport
from cove.sdk.images import AsyncImages, ImageCalls, Images
from cove.sdk.models import CreateSandboxParams
from cove.sdk.sandbox import BUILDING_STATES, AsyncSandbox, Sandbox, SandboxCalls, check_started
from cove.sdk.snapshots import AsyncSnapshots, Backoff, LogLines, SnapshotCalls, Snapshots
from cove.wire.errors import AuthError, CoveError, NotFound
from cove.wire.protocol import NodeList

_PARAM_NAMES = [f.name for f in dataclasses.fields(CreateSandboxParams)]
# After its image is built, a sandbox starts in the background: wait through these.
STARTING = (*BUILDING_STATES, "creating", "starting")
log = logging.getLogger(__name__)


def _not_deleted(sandbox_id: str, err: Exception) -> None:
    """A sandbox this client meant to delete is left running: say so, it uses resources."""
    log.warning(
        "sandbox %s was not deleted (%s); delete it with `cove delete %s`", sandbox_id, err,
        sandbox_id,
    )  # fmt: skip


def merge_params(params: Any, overrides: dict[str, Any]) -> CreateSandboxParams:
    """`create()`'s arguments: a params object (Cove's or Daytona's), then keywords."""
    values: dict[str, Any] = {}
    if params is not None:
        values = {
            n: getattr(params, n) for n in _PARAM_NAMES if getattr(params, n, None) is not None
        }
        resources = getattr(params, "resources", None)  # Daytona's image params
        for n in ("cpu", "memory", "disk"):
            if resources is not None and getattr(resources, n, None) is not None:
                values[n] = getattr(resources, n)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return CreateSandboxParams(**values)


def _on_exit(callback: Callable[[], None]) -> None:
    """Run `callback` at interpreter exit, while the embedded server still works.

    Plain `atexit` is too late: by then `concurrent.futures` has refused new
    work, and the server's `asyncio.to_thread` calls (deleting a sandbox)
    fail. `threading._register_atexit` hooks run first, newest first, before
    that executor shutdown (registered earlier, when asyncio was imported).
    """
    register = getattr(threading, "_register_atexit", None)
    try:
        (register or atexit.register)(callback)
    except RuntimeError:  # the interpreter is already shutting down
        atexit.register(callback)


class _ClientBase:
    """What both faces share: configuration, the embedded server, what to clean up."""

    def __init__(
        self, config: CoveConfig | None, api_url: str | None, api_key: str | None,
        data_dir: str | None, keep: bool,
    ) -> None:  # fmt: skip
        cfg = (config or CoveConfig(api_url, api_key, data_dir)).resolved()
        self.keep = keep
        self.embedded: embedded.EmbeddedServer | None = None
        self._created: list[str] = []
        if cfg.api_url is None:
            self.embedded = embedded.acquire(Path(cfg.data_dir or default_embedded_dir()))
            self.api_url, self.api_key, self._trust_env = (
                self.embedded.api_url, self.embedded.api_key, False,
            )  # fmt: skip
            _on_exit(self._at_exit)
        else:
            if not cfg.api_key:
                raise AuthError(
                    f"no API key for {cfg.api_url}: set COVE_API_KEY or pass api_key= "
                    "(`cove serve` prints the key)"
                )
            self.api_url, self.api_key, self._trust_env = cfg.api_url, cfg.api_key, True
        self._calls = SandboxCalls(Endpoints(self.api_url))

    def _forget(self, sandbox_id: str) -> None:
        if sandbox_id in self._created:
            self._created.remove(sandbox_id)

    def _to_clean(self) -> list[str]:
        ids, self._created = ([] if self.keep else list(self._created)), []
        return ids

    def _release(self) -> None:
        if self.embedded is not None:
            srv, self.embedded = self.embedded, None
            embedded.release(srv)

    def _at_exit(self) -> None:
        """Interpreter exit with an embedded client still open: clean up without the client."""
        if self.embedded is None:
            return  # closed already
        with httpx.Client(headers=headers(self.api_key, ""), trust_env=False, timeout=60) as http:
            for sid in self._to_clean():
                try:
                    r = http.delete(f"{self.api_url}/sandbox/{sid}")
                except httpx.HTTPError as err:
                    _not_deleted(sid, err)
                    continue
                if r.status_code >= 400 and r.status_code != 404:  # 404: deleted already
                    _not_deleted(sid, Exception(f"HTTP {r.status_code}: {r.text[:200]}"))
        self._release()


class Cove(_ClientBase):
    """Synchronous client: `Cove()`, `Cove(api_url=..., api_key=...)` or `Cove(CoveConfig(...))`."""

    def __init__(
        self, config: CoveConfig | None = None, *, api_url: str | None = None,
        api_key: str | None = None, data_dir: str | None = None, keep: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(config, api_url, api_key, data_dir, keep)
        self._t = SyncTransport(self.api_url, self.api_key, self._trust_env)
        self.images = Images(self._t, ImageCalls(Endpoints(self.api_url)))
        self.snapshots = Snapshots(self._t, SnapshotCalls(Endpoints(self.api_url)))

    def create(
        self, params: Any = None, timeout: float | None = 120, *, language: str | None = None,
        env_vars: dict[str, str] | None = None, labels: dict[str, str] | None = None,
        name: str | None = None, cpu: int | None = None, memory: int | None = None,
        disk: int | None = None, auto_stop_interval: int | None = None,
        auto_delete_interval: int | None = None, entrypoint: list[str] | None = None,
        network_block_all: bool | None = None, network_allow_list: str | None = None,
        domain_allow_list: str | None = None, outbound_proxy_url: str | None = None,
        network_deny_list: str | None = None,
        snapshot: str | None = None,
        ephemeral: bool | None = None,
        linked_sandbox: str | None = None,
        image: Any = None,
        on_snapshot_create_logs: Callable[[str], None] | None = None,
    ) -> Sandbox:  # fmt: skip
        """Create and start a sandbox; memory and disk in GiB.

        With `image` (a reference or an `Image` builder), the image is built
        first (its log to `on_snapshot_create_logs`) unless already cached.
        """
        p = merge_params(params, {k: v for k, v in locals().items() if k in _PARAM_NAMES})
        call = self._calls.create(p)
        call.timeout = timeout
        wire = self._t.call(call)
        self._created.append(wire.id)
        try:
            if wire.state in BUILDING_STATES:
                lines = LogLines(on_snapshot_create_logs)
                with self._t.stream(self._calls.build_logs(wire.id)) as pieces:
                    for piece in pieces:
                        lines.feed(piece)
                lines.close()
                wire = self._t.call(self._calls.get(wire.id))
            # A create on a cached image may answer while the start is still under
            # way (`starting`): wait for it as after a build, or the first call fails.
            wait = Backoff(timeout)
            while wire.state in STARTING:
                time.sleep(wait.next(f"sandbox {wire.id}'s start"))
                wire = self._t.call(self._calls.get(wire.id))
            check_started(wire)
        except CoveError:
            try:
                self._t.call(self._calls.delete(wire.id, timeout))
            except CoveError as err:
                _not_deleted(wire.id, err)
            raise
        return Sandbox(self._t, self._calls, wire)

    def get(self, sandbox_id_or_name: str) -> Sandbox:
        return Sandbox(self._t, self._calls, self._t.call(self._calls.get(sandbox_id_or_name)))

    def list(self, labels: dict[str, str] | None = None) -> list[Sandbox]:
        return [Sandbox(self._t, self._calls, w) for w in self._t.call(self._calls.list(labels))]

    def nodes(self) -> NodeList:
        """The hosts that run sandboxes: capacity, used, free, and sandboxes held."""
        return self._t.call(self._calls.nodes())

    def delete(self, sandbox: Sandbox | str, timeout: float | None = 60) -> None:
        sid = sandbox if isinstance(sandbox, str) else sandbox.id
        self._t.call(self._calls.delete(sid, timeout))
        self._forget(sid)

    def start(self, sandbox: Sandbox, timeout: float | None = 60) -> None:
        sandbox.start(timeout)

    def stop(self, sandbox: Sandbox, timeout: float | None = 60) -> None:
        sandbox.stop(timeout)

    def close(self) -> None:
        """Delete the sandboxes this client created (unless `keep`), stop an embedded server."""
        try:
            for sid in self._to_clean():
                try:
                    self._t.call(self._calls.delete(sid, 60))
                except NotFound:  # deleted already, e.g. by sandbox.delete()
                    pass
                except CoveError as err:
                    _not_deleted(sid, err)
        finally:
            self._t.close()
            self._release()

    def __enter__(self) -> Cove:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()


class AsyncCove(_ClientBase):
    """Asynchronous client, same names as `Cove` with coroutines.

    In embedded mode the constructor starts the in-process server before it
    returns (about 0.2 s, once per process and data directory).
    """

    def __init__(
        self, config: CoveConfig | None = None, *, api_url: str | None = None,
        api_key: str | None = None, data_dir: str | None = None, keep: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(config, api_url, api_key, data_dir, keep)
        self._t = AsyncTransport(self.api_url, self.api_key, self._trust_env)
        self.images = AsyncImages(self._t, ImageCalls(Endpoints(self.api_url)))
        self.snapshots = AsyncSnapshots(self._t, SnapshotCalls(Endpoints(self.api_url)))

    async def create(
        self, params: Any = None, timeout: float | None = 120, *, language: str | None = None,
        env_vars: dict[str, str] | None = None, labels: dict[str, str] | None = None,
        name: str | None = None, cpu: int | None = None, memory: int | None = None,
        disk: int | None = None, auto_stop_interval: int | None = None,
        auto_delete_interval: int | None = None, entrypoint: list[str] | None = None,
        network_block_all: bool | None = None, network_allow_list: str | None = None,
        domain_allow_list: str | None = None, outbound_proxy_url: str | None = None,
        network_deny_list: str | None = None,
        snapshot: str | None = None,
        ephemeral: bool | None = None,
        linked_sandbox: str | None = None,
        image: Any = None,
        on_snapshot_create_logs: Callable[[str], None] | None = None,
    ) -> AsyncSandbox:  # fmt: skip
        """Create and start a sandbox; memory and disk in GiB (see `Cove.create`)."""
        p = merge_params(params, {k: v for k, v in locals().items() if k in _PARAM_NAMES})
        call = self._calls.create(p)
        call.timeout = timeout
        wire = await self._t.call(call)
        self._created.append(wire.id)
        try:
            if wire.state in BUILDING_STATES:
                lines = LogLines(on_snapshot_create_logs)
                async with self._t.stream(self._calls.build_logs(wire.id)) as pieces:
                    async for piece in pieces:
                        lines.feed(piece)
                lines.close()
                wire = await self._t.call(self._calls.get(wire.id))
            wait = Backoff(timeout)  # a create may answer `starting`: see the sync client
            while wire.state in STARTING:
                await asyncio.sleep(wait.next(f"sandbox {wire.id}'s start"))
                wire = await self._t.call(self._calls.get(wire.id))
            check_started(wire)
        except CoveError:
            try:
                await self._t.call(self._calls.delete(wire.id, timeout))
            except CoveError as err:
                _not_deleted(wire.id, err)
            raise
        return AsyncSandbox(self._t, self._calls, wire)

    async def get(self, sandbox_id_or_name: str) -> AsyncSandbox:
        wire = await self._t.call(self._calls.get(sandbox_id_or_name))
        return AsyncSandbox(self._t, self._calls, wire)

    async def list(self, labels: dict[str, str] | None = None) -> list[AsyncSandbox]:
        wires = await self._t.call(self._calls.list(labels))
        return [AsyncSandbox(self._t, self._calls, w) for w in wires]

    async def nodes(self) -> NodeList:
        """The hosts that run sandboxes: capacity, used, free, and sandboxes held."""
        return await self._t.call(self._calls.nodes())

    async def delete(self, sandbox: AsyncSandbox | str, timeout: float | None = 60) -> None:
        sid = sandbox if isinstance(sandbox, str) else sandbox.id
        await self._t.call(self._calls.delete(sid, timeout))
        self._forget(sid)

    async def start(self, sandbox: AsyncSandbox, timeout: float | None = 60) -> None:
        await sandbox.start(timeout)

    async def stop(self, sandbox: AsyncSandbox, timeout: float | None = 60) -> None:
        await sandbox.stop(timeout)

    async def close(self) -> None:
        """Delete the sandboxes this client created (unless `keep`), stop an embedded server."""
        try:
            for sid in self._to_clean():
                try:
                    await self._t.call(self._calls.delete(sid, 60))
                except NotFound:  # deleted already, e.g. by sandbox.delete()
                    pass
                except CoveError as err:
                    _not_deleted(sid, err)
        finally:
            await self._t.close()
            await asyncio.to_thread(self._release)  # joins the server thread

    async def __aenter__(self) -> AsyncCove:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.close()
