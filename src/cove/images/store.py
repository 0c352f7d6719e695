"""The image store on disk: layers by content key, images by id, tags by name.

    <root>/layers/<key>/        one layer's files (never changed once made)
    <root>/images/<id>.json     an image: its layer keys (bottom first) and config
    <root>/tags/<quoted name>   the id a name points at

Layers and images are made under a temporary name and renamed into place,
so a reader never sees half of one, and two builders of the same content
both end with the same result. An image's id is the hash of its layers and
config, so building the same thing twice gives the same image. "Last used"
is the image file's mtime (touched when a sandbox starts on it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cove.wire.errors import NotFound
from cove.wire.model import WireModel

# The host uid that owns every image file. Build sandboxes map their root to
# it, so a RUN step may write anywhere in the image; in other sandboxes it is
# an unmapped uid (shown as 65534), so image files are read-only there. It is
# below the sandboxes' own uid range (workspace.UID_BASE).
IMAGE_UID = 599_999


@dataclass
class ImageConfig(WireModel):
    """How a sandbox on the image starts (Docker's image config, the parts Cove uses)."""

    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)

    def command(self) -> list[str] | None:
        """What the sandbox runs at start: Docker's ENTRYPOINT + CMD."""
        if self.entrypoint:
            return self.entrypoint + (self.cmd or [])
        return self.cmd or None


@dataclass
class Image(WireModel):
    id: str
    layers: list[str]  # layer keys, bottom first
    config: ImageConfig = field(default_factory=ImageConfig)
    created_at: float = 0.0
    size: int = 0  # bytes of its layers on disk
    source: str = ""  # what it was made from (a reference, a Dockerfile's digest)
    # A snapshot of a sandbox on the default root: its layers only seed the
    # workspace of new sandboxes, which run on the default root too.
    host_root: bool = False


def content_key(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for sub in ("layers", "images", "tags", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # Root-owned and closed to others: sandbox uids never read layers by
        # host path; overlayfs, mounted by root, reads them for them.
        self.root.chmod(0o700)

    # -- layers ------------------------------------------------------------------

    def layer_path(self, key: str) -> Path:
        return self.root / "layers" / key

    def has_layer(self, key: str) -> bool:
        return self.layer_path(key).is_dir()

    def scratch(self, name: str) -> Path:
        """A fresh empty directory to make a layer in (then `commit_layer` it)."""
        path = self.root / "tmp" / f"{name}.{os.getpid()}.{time.monotonic_ns()}"
        path.mkdir(parents=True)
        return path

    def commit_layer(self, key: str, tree: Path) -> Path:
        """Move `tree` into place as layer `key` (if another got there first, keep that one)."""
        target = self.layer_path(key)
        try:
            tree.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(tree, ignore_errors=True)
        return target

    # -- images ------------------------------------------------------------------

    def _image_file(self, image_id: str) -> Path:
        return self.root / "images" / f"{image_id}.json"

    def put(
        self, layers: list[str], config: ImageConfig, source: str = "", host_root: bool = False
    ) -> Image:
        for key in layers:
            if not self.has_layer(key):
                raise NotFound(f"image layer {key} is not in the store")
        parts = [*layers, json.dumps(config.to_wire(), sort_keys=True)]
        image_id = content_key(*parts, "host-root") if host_root else content_key(*parts)
        path = self._image_file(image_id)
        if path.exists():
            return self.get(image_id)
        size = sum(tree_size(self.layer_path(k)) for k in layers)
        image = Image(image_id, list(layers), config, time.time(), size, source, host_root)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(image.to_wire()))
        tmp.rename(path)
        return image

    def get(self, image_id: str) -> Image:
        try:
            data = json.loads(self._image_file(image_id).read_text())
        except FileNotFoundError:
            raise NotFound(f"image {image_id} is not in the store") from None
        return Image.from_wire(data, "image")

    def images(self) -> Iterator[Image]:
        for path in sorted((self.root / "images").glob("*.json")):
            with contextlib.suppress(FileNotFoundError):
                yield Image.from_wire(json.loads(path.read_text()), "image")

    def last_used(self, image_id: str) -> float:
        try:
            return self._image_file(image_id).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def touch(self, image_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self._image_file(image_id))

    def lower_dirs(self, image_id: str) -> list[str]:
        """The image's layer directories, top first (overlayfs's lowerdir order)."""
        image = self.get(image_id)
        return [str(self.layer_path(k)) for k in reversed(image.layers)]

    def remove_image(self, image_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._image_file(image_id).unlink()

    def remove_layer(self, key: str) -> None:
        """Rename first, so no reader sees half a layer; then delete."""
        path = self.layer_path(key)
        doomed = self.root / "tmp" / f"removing-{key}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            path.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        for note in (f".{key}.size", f".{key}.digest"):  # see layer_size, treedigest
            with contextlib.suppress(FileNotFoundError):
                (self.root / "layers" / note).unlink()

    # -- tags --------------------------------------------------------------------

    def _tag_file(self, name: str) -> Path:
        return self.root / "tags" / urllib.parse.quote(name, safe="")

    def tag(self, name: str, image_id: str) -> None:
        path = self._tag_file(name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(image_id)
        tmp.rename(path)

    def resolve(self, name: str) -> str | None:
        """The image id `name` points at (a tag or an id), or None."""
        with contextlib.suppress(FileNotFoundError):
            return self._tag_file(name).read_text().strip()
        if self._image_file(name).exists():
            return name
        return None

    def untag(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._tag_file(name).unlink()

    def tags(self) -> dict[str, str]:
        out = {}
        for path in (self.root / "tags").iterdir():
            if not path.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    out[urllib.parse.unquote(path.name)] = path.read_text().strip()
        return out


@dataclass
class PruneResult:
    removed_images: list[str]
    removed_layers: list[str]
    freed_bytes: int


def layer_size(store: ImageStore, key: str) -> int:
    """A layer's bytes on disk, measured once and kept next to it."""
    note = store.root / "layers" / f".{key}.size"
    try:
        return int(note.read_text())
    except (FileNotFoundError, ValueError):
        size = tree_size(store.layer_path(key))
        note.write_text(str(size))
        return size


def prune(store: ImageStore, limit_bytes: int, in_use: set[str], everything: bool) -> PruneResult:
    """Evict images least recently used first until the layers fit in `limit_bytes`.

    An image in use (a sandbox runs on it) is never evicted; a tagged one (a
    snapshot, a named build) only with `everything`, which also ignores the
    limit. Layers the evicted images leave unreferenced go with them; other
    unreferenced layers (steps of a build that failed later, kept so that its
    retry starts from them) only with `everything`.
    """
    tags = store.tags()
    tagged = set(tags.values())
    images = sorted(store.images(), key=lambda i: store.last_used(i.id))
    keys = {p.name for p in (store.root / "layers").iterdir() if not p.name.startswith(".")}
    total = sum(layer_size(store, k) for k in keys)
    removed: list[str] = []
    candidates: set[str] = set()
    for image in images:
        if image.id in in_use or (image.id in tagged and not everything):
            continue
        if not everything and total <= limit_bytes:
            break
        store.remove_image(image.id)
        for name, target in tags.items():
            if target == image.id:
                store.untag(name)
        removed.append(image.id)
        candidates.update(image.layers)
        referenced = {k for i in store.images() for k in i.layers}
        for key in set(image.layers) - referenced:
            total -= layer_size(store, key)
    referenced = {k for i in store.images() for k in i.layers}
    gone = sorted((keys if everything else candidates & keys) - referenced)
    freed = 0
    for key in gone:
        freed += layer_size(store, key)
        store.remove_layer(key)
    return PruneResult(removed, gone, freed)
