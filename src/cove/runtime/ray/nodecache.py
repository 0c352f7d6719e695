"""A node's side of image shipping: its own image cache, and trees staged to go back.

The cache is the node's local backend's `ImageStore`, under the node's own
data dir: layers by key, as on the control plane, each one arrived over the
relay (`transfer`, `layer:<key>`) and hashed to the digest the control
plane sent before it is committed. A node never reads the control plane's
store; on several machines it could not. Image files keep their owner
(`IMAGE_UID`), so they are read-only to sandboxes here as on one host.

Trees that go the other way (a build step's layer, a sandbox's changes)
are made in the cache's scratch area and staged under a random name with
their digest; the control plane takes each once (`take:<name>`), and one it
never takes goes when it says so (`drop`) or with the actor.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from pathlib import Path

from cove.images.store import Image, ImageStore
from cove.images.treedigest import tree_digest
from cove.runtime.ray import transfer
from cove.wire.errors import CoveError

log = logging.getLogger("cove.runtime.ray")

KEY = re.compile(r"[0-9a-f]{8,64}")


class NodeCache:
    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.staged: dict[str, Path] = {}  # name -> a tree (in a scratch dir) to be taken

    # -- layers and images in -----------------------------------------------------

    def missing(self, keys: list[str]) -> list[str]:
        return [k for k in keys if not self.store.has_layer(k)]

    def put_image(self, image: Image) -> str:
        """Record `image` here (its layers arrived); its id, the same as the control plane's."""
        return self.store.put(image.layers, image.config, image.source, image.host_root).id

    def layer_paths(self, keys: list[str]) -> list[str]:
        """The cache's directories for `keys` (a build step's image so far, top first)."""
        return [str(self.store.layer_path(k)) for k in keys]

    async def receive_layer(
        self, key: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if not KEY.fullmatch(key):
            raise ValueError(f"not a layer key: {key!r}")
        digest = await transfer.read_line(reader)
        if self.store.has_layer(key):  # another create's copy got here first
            writer.write(b"OK\n")
            return
        scratch = self.store.scratch("arriving")
        answer = b"OK\n"
        try:
            await transfer.receive_tree(reader, scratch / "tree", digest)
            self.store.commit_layer(key, scratch / "tree")
        except CoveError as err:
            log.warning("layer %s did not arrive: %s", key, err.message)
            answer = b"NO " + err.message.encode()[:400] + b"\n"
        finally:  # before the answer: whoever reads it finds nothing half-made
            await asyncio.to_thread(transfer.remove, scratch)
        writer.write(answer)

    # -- trees out ------------------------------------------------------------------

    def scratch(self, name: str) -> Path:
        """A fresh directory to make a tree in (its `tree` inside, then `stage` that)."""
        return self.store.scratch(name)

    async def stage(self, tree: Path) -> tuple[str, str]:
        """`tree` (inside a `scratch` dir) kept for the control plane: (its name, digest)."""
        name = secrets.token_hex(16)
        self.staged[name] = tree
        try:
            digest = await asyncio.to_thread(tree_digest, tree)
        except BaseException:
            self.drop(name)
            raise
        return name, digest

    async def send_staged(self, name: str, writer: asyncio.StreamWriter) -> None:
        tree = self.staged.pop(name, None)
        if tree is None:
            raise ValueError(f"nothing staged as {name!r}")
        try:
            await transfer.send_tree(tree, writer)
        finally:  # before the end of the stream: whoever took it finds no copy left here
            await asyncio.to_thread(transfer.remove, tree.parent)
        transfer.end_stream(writer)

    def drop(self, name: str) -> None:
        tree = self.staged.pop(name, None)
        if tree is not None:
            transfer.remove(tree.parent)

    async def serve(
        self, kind: str, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One transfer connection, past the relay's handshake."""
        if kind == transfer.LAYER:
            await self.receive_layer(name, reader, writer)
        else:
            await self.send_staged(name, writer)
