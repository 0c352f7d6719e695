"""The control plane's side of image shipping: its store's layers out to nodes, trees back.

A sandbox on an image runs on its node's own copy of the image's layers
(`nodecache`). Before the node creates it, the control plane asks which
layers the node lacks and pushes each over the node's relay (`transfer`,
`layer:<key>`), with the digest the node checks before it keeps the layer.
Concurrent creates of one image on one node ship each layer once: the
second waits on the first's transfer. Trees made on a node (a build step's
layer, a sandbox's changes) come back the same way (`take:<name>`) and are
checked against the digest the node reported over Ray.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cove.images.store import ImageStore
from cove.images.treedigest import layer_digest, tree_digest
from cove.runtime.endpoint import RelayEndpoint
from cove.runtime.ray import transfer
from cove.runtime.ray.cluster import Node
from cove.wire.errors import SandboxError

log = logging.getLogger("cove.runtime.ray")

# One actor call on a node (RayBackend._call: the node's loss is `node lost`).
Call = Callable[..., Awaitable[Any]]


class Shipping:
    def __init__(self, store: ImageStore, secret: bytes, call: Call) -> None:
        self.store = store
        self.secret = secret
        self.call = call
        self._shipping: dict[tuple[str, str], asyncio.Future[None]] = {}  # (node, key)

    async def ensure_image(self, node: Node, image_id: str) -> None:
        """`image_id` in the node's cache: its missing layers pushed, then the image recorded."""
        image = await asyncio.to_thread(self.store.get, image_id)
        await self.ensure_layers(node, image.layers)
        got = await self.call(node, "put_image", image)
        if got != image.id:  # the same layers and config make the same id, or a bug
            raise SandboxError(f"image {image.id[:12]} became {got[:12]} on node {node.id[:12]}")

    async def ensure_layers(self, node: Node, keys: list[str]) -> None:
        missing = await self.call(node, "missing_layers", keys)
        await asyncio.gather(
            *(self._ship_once(node, key, self.store.layer_path(key), None) for key in missing)
        )

    async def ensure_tree(self, node: Node, tree: Path) -> str:
        """Any tree of the control plane's (a build's context) in the node's cache, read-only
        like a layer: its key there, made of its digest, so the same tree ships once."""
        digest = await asyncio.to_thread(tree_digest, tree)
        key = digest.removeprefix("sha256:")[:32]
        if await self.call(node, "missing_layers", [key]):
            await self._ship_once(node, key, tree, digest)
        return key

    async def _ship_once(self, node: Node, key: str, tree: Path, digest: str | None) -> None:
        slot = (node.id, key)
        shipping = self._shipping.get(slot)
        if shipping is None:
            shipping = asyncio.ensure_future(self._ship(node, key, tree, digest))
            self._shipping[slot] = shipping
            shipping.add_done_callback(lambda _: self._shipping.pop(slot, None))
        # Shielded: one create given up on does not cut the copy others wait for.
        await asyncio.shield(shipping)

    async def _ship(self, node: Node, key: str, tree: Path, digest: str | None) -> None:
        if digest is None:  # a stored layer: its digest is kept next to it
            digest = await asyncio.to_thread(layer_digest, self.store, key)
        reader, writer = await self._open(node, f"{transfer.LAYER}:{key}")
        try:
            writer.write(digest.encode() + b"\n")
            await transfer.send_tree(tree, writer)
            transfer.end_stream(writer)
            answer = await transfer.read_line(reader)
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise transfer.TransferFailed(
                f"layer {key[:12]} to node {node.id[:12]}: the relay connection failed: {exc!r}"
            ) from None
        finally:
            writer.close()
        if answer != "OK":
            raise transfer.TransferFailed(
                f"layer {key[:12]} to node {node.id[:12]}: {answer.removeprefix('NO ')}"
            )
        log.info("layer %s shipped to node %s", key[:12], node.id[:12])

    async def take(self, node: Node, name: str, digest: str, dest: Path) -> None:
        """The tree the node staged as `name` unpacked at `dest`, checked against `digest`."""
        reader, writer = await self._open(node, f"{transfer.TAKE}:{name}")
        try:
            await transfer.receive_tree(reader, dest, digest)
        finally:
            writer.close()

    async def _open(
        self, node: Node, target: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if node.relay is None:
            raise SandboxError(f"node {node.id[:12]} has no relay (node lost?)")
        host, port = node.relay
        try:
            sock = await RelayEndpoint(host, port, target, self.secret).connect()
        except OSError as exc:
            raise transfer.TransferFailed(
                f"node {node.id[:12]}'s relay refused {target.partition(':')[0]}: {exc}"
            ) from None
        return await asyncio.open_connection(sock=sock, limit=transfer.PIECE)
