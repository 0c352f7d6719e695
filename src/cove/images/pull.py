"""Images pulled from an OCI registry by skopeo, layer by layer.

No registry protocol and no layer format is written here: `skopeo inspect`
resolves the reference to a manifest digest, and `skopeo copy` fetches it
into a scratch containers/storage root with the overlay driver, which
unpacks each layer into its own directory in overlayfs's format (OCI
whiteouts become 0:0 character devices, opaque directories an xattr). Each
of those directories becomes a store layer keyed by the layer's
uncompressed digest (its diff ID): a layer's overlay tree depends on that
layer alone, so two images sharing a base share its layers on disk, and
pulling the same manifest digest again reuses the whole image without
fetching. The image's config (Env, Entrypoint, Cmd, WorkingDir) comes from
`skopeo inspect --config`.

A reference without a registry goes to `default_registry` (Docker Hub).
Loopback registries are spoken to over plain HTTP, as Docker does; others
need TLS. `auth_file` (containers-auth.json format) holds credentials.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        if shutil.which("skopeo") is None:
            raise ImageUnavailable(f"image {ref!r}: pulling needs skopeo (apt-get install skopeo)")
        full = qualify(ref, self.settings.default_registry)
        log(f"pulling {full}")
        try:
            out = await _run(["skopeo", "inspect", *self._flags(full), f"docker://{full}"], None)
            digest = json.loads(out)["Digest"]
        except SandboxError as err:
            raise ImageUnavailable(
                f"image {ref!r} cannot be had: the registry did not give it ({err.message})"
            ) from None
        cached = self.store.resolve(f"pulled:{digest}")
        if cached is not None:
            log(f"{digest}: already pulled")
            return self.store.get(cached)
        config = await _run(
            ["skopeo", "inspect", "--config", *self._flags(full), f"docker://{full}"], None
        )
        work = self.store.scratch("pull")
        try:
            # skip_mount_home: no bind mount of the scratch root (nothing to undo).
            storage = (
                f"containers-storage:[overlay@{work}/root+{work}/run:overlay.skip_mount_home=true]"
            )
            flags = self._flags(full, "src-")
            dest = f"{storage}cove.pull/image:latest"
            await _run(["skopeo", "copy", "--quiet", *flags, f"docker://{full}", dest], log)
            _unmount_if_mounted(work / "root/overlay")  # a containers/storage that mounted anyway
            keys = await asyncio.to_thread(self._take_layers, work / "root", log)
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
        image = self.store.put(keys, _config(json.loads(config)), source=full)
        self.store.tag(f"pulled:{digest}", image.id)
        log(f"{digest}: {len(keys)} layers, {image.size // (1 << 20)} MiB")
        return image

    def _take_layers(self, root: Path, log: Log) -> list[str]:
        """The unpacked layers of the one image under `root`, bottom first, moved into the store."""
        images = json.loads((root / "overlay-images/images.json").read_text())
        layers = {x["id"]: x for x in json.loads((root / "overlay-layers/layers.json").read_text())}
        chain: list[dict[str, Any]] = []
        top = images[0].get("layer") if images else None
        while top:
            chain.append(layers[top])
            top = layers[top].get("parent")
        chain.reverse()
        keys: list[str] = []
        for layer in chain:
            diff_id = str(layer["diff-digest"])
            key = content_key("oci-layer", diff_id)
            if key in keys:  # the same layer twice in one image: its own copy
                key = content_key("oci-layer", diff_id, str(len(keys)))
            keys.append(key)
            if self.store.has_layer(key):
                log(f"  layer {diff_id[:19]}: shared, already in the store")
                continue
            tree = root / "overlay" / str(layer["id"]) / "diff"
            subprocess.run(["chown", "-hR", f"{IMAGE_UID}:{IMAGE_UID}", str(tree)], check=True)
            self.store.commit_layer(key, tree)
            log(f"  layer {diff_id[:19]}: unpacked")
        return keys


def _config(oci: dict[str, Any]) -> ImageConfig:
    """Cove's part of an OCI image config (`skopeo inspect --config`)."""
    c = oci.get("config")
    if not isinstance(c, dict):
        return ImageConfig()
    env = {}
    for item in c.get("Env") or []:
        name, _, value = str(item).partition("=")
        env[name] = value
    cwd = c.get("WorkingDir")
    entrypoint = [str(a) for a in c.get("Entrypoint") or []]
    cmd = [str(a) for a in c.get("Cmd") or []]
    return ImageConfig(
        env=env,
        workdir=cwd if isinstance(cwd, str) and cwd not in ("", "/") else None,
        entrypoint=entrypoint or None,
        cmd=cmd or None,
    )


def _unmount_if_mounted(path: Path) -> None:
    """Detach `path` if /proc/self/mounts lists it (a rename out of it would fail: EXDEV)."""
    with open("/proc/self/mounts") as f:
        points = {line.split()[1].replace("\\040", " ") for line in f}
    if str(path) in points:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


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
