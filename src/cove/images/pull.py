"""Images pulled from an OCI registry: skopeo fetches, umoci unpacks.

No registry protocol is written here: `skopeo inspect` resolves the
reference to a manifest digest, `skopeo copy` fetches it into an OCI layout,
and `umoci unpack` applies its layers in order (whiteouts included) into a
root filesystem, which becomes one layer in the store keyed by that digest:
pulling the same digest again reuses it without fetching. The image's config
(Env, Entrypoint + Cmd, WorkingDir) comes from umoci's runtime config.

A reference without a registry goes to `default_registry` (Docker Hub).
Loopback registries are spoken to over plain HTTP, as Docker does; others
need TLS. `auth_file` (containers-auth.json format) holds credentials.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from cove.images.bases import ImageUnavailable
from cove.images.store import IMAGE_UID, Image, ImageConfig, ImageStore, content_key
from cove.wire.errors import SandboxError

Log = Callable[[str], None]
LOOPBACK = ("127.", "localhost", "[::1]")


@dataclass
class RegistrySettings:
    default_registry: str = "docker.io"
    auth_file: str | None = None


def qualify(ref: str, default_registry: str) -> str:
    """`ref` with its registry: `python:3` -> `docker.io/library/python:3`."""
    first, sep, _ = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return ref
    if default_registry == "docker.io" and not sep:
        ref = f"library/{ref}"
    return f"{default_registry}/{ref}"


class Puller:
    def __init__(self, store: ImageStore, settings: RegistrySettings) -> None:
        self.store = store
        self.settings = settings

    def _flags(self, ref: str, prefix: str = "") -> list[str]:
        """TLS and credentials flags (`prefix` "src-" for `skopeo copy`)."""
        flag = "false" if ref.startswith(LOOPBACK) else "true"
        auth = self.settings.auth_file
        return [f"--{prefix}tls-verify={flag}", *([f"--{prefix}authfile", auth] if auth else [])]

    async def pull(self, ref: str, log: Log) -> Image:
        """The image `ref` names, from the store if its digest is there, else fetched."""
        for tool in ("skopeo", "umoci"):
            if shutil.which(tool) is None:
                raise ImageUnavailable(
                    f"image {ref!r}: pulling needs {tool} (apt-get install skopeo umoci)"
                )
        full = qualify(ref, self.settings.default_registry)
        log(f"pulling {full}")
        try:
            out = await _run(["skopeo", "inspect", *self._flags(full), f"docker://{full}"], None)
            digest = json.loads(out)["Digest"]
        except SandboxError as err:
            raise ImageUnavailable(
                f"image {ref!r} cannot be had: the registry did not give it ({err.message})"
            ) from None
        key = content_key("pulled", digest)
        cached = self.store.resolve(f"pulled:{digest}")
        if cached is not None:
            log(f"{digest}: already pulled")
            return self.store.get(cached)
        work = self.store.scratch("pull")
        try:
            layout = work / "oci"
            source = f"docker://{full}"
            flags = self._flags(full, "src-")
            await _run(["skopeo", "copy", "--quiet", *flags, source, f"oci:{layout}:image"], log)
            bundle = work / "bundle"
            await _run(["umoci", "unpack", "--image", f"{layout}:image", str(bundle)], log)
            runtime = json.loads((bundle / "config.json").read_text())
            rootfs = bundle / "rootfs"
            owner = f"{IMAGE_UID}:{IMAGE_UID}"
            await _run(["chown", "-hR", owner, str(rootfs)], log)
            self.store.commit_layer(key, rootfs)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
        image = self.store.put([key], _config(runtime), source=full)
        self.store.tag(f"pulled:{digest}", image.id)
        log(f"{digest}: unpacked, {image.size // (1 << 20)} MiB")
        return image


def _config(runtime: dict[str, object]) -> ImageConfig:
    process = runtime.get("process")
    if not isinstance(process, dict):
        return ImageConfig()
    env = {}
    for item in process.get("env") or []:
        name, _, value = str(item).partition("=")
        env[name] = value
    cwd = process.get("cwd")
    args = [str(a) for a in process.get("args") or []]
    return ImageConfig(
        env=env,
        workdir=cwd if isinstance(cwd, str) and cwd != "/" else None,
        cmd=args or None,
    )


async def _run(argv: list[str], log: Log | None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LC_ALL": "C"},
    )
    out, err = await proc.communicate()
    text = err.decode(errors="replace").strip()
    if log is not None:
        for line in out.decode(errors="replace").splitlines():
            log("  " + line)
    if proc.returncode != 0:
        last = text.splitlines()[-1] if text else f"exit status {proc.returncode}"
        raise SandboxError(f"{argv[0]} {argv[1]}: {last}")
    return out.decode(errors="replace")
