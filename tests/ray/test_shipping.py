"""Image layers between the control plane's store and a node's own cache, over a real relay.

No Ray here: a node's relay (`Relay`) and cache (`NodeCache`) on loopback, the
control plane's `Shipping` pushing to and taking from them; the actor calls
Ray would carry are made directly on the same node objects. The trees hold
what layers are made of: files owned by the image uid, a whiteout (0:0
character device), an opaque directory (`trusted.overlay.opaque`), a symlink.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cove.images.store import IMAGE_UID, ImageConfig, ImageStore, content_key
from cove.images.treedigest import layer_digest, tree_digest
from cove.runtime.ray.cluster import Node
from cove.runtime.ray.nodecache import NodeCache
from cove.runtime.ray.relay import Relay
from cove.runtime.ray.shipping import Shipping
from cove.runtime.ray.transfer import TransferFailed

SECRET = b"s" * 64

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="layers keep owners and devices: root")


def layer_tree(dest: Path, text: str) -> Path:
    (dest / "etc/opaque").mkdir(parents=True)
    (dest / "etc/hello").write_text(text)
    (dest / "etc/link").symlink_to("hello")
    os.mknod(dest / "etc/gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))  # a whiteout
    os.setxattr(dest / "etc/opaque", "trusted.overlay.opaque", b"y")
    for path in [dest, *dest.rglob("*")]:
        os.chown(path, IMAGE_UID, IMAGE_UID, follow_symlinks=False)
    return dest


@dataclass
class Pair:
    cp: ImageStore
    node: NodeCache
    node_ref: Node
    transfers: list[str]  # kind:name of every transfer connection the relay served

    def shipping(self, secret: bytes = SECRET) -> Shipping:
        async def call(node: Node, method: str, *args: Any) -> Any:
            assert node is self.node_ref
            if method == "missing_layers":
                return self.node.missing(*args)
            if method == "put_image":
                return self.node.put_image(*args)
            raise AssertionError(method)

        return Shipping(self.cp, secret, call)


@asynccontextmanager
async def node_and_control_plane(tmp: Path) -> AsyncIterator[Pair]:
    cache = NodeCache(ImageStore(tmp / "node-images"))
    seen: list[str] = []

    async def serve(kind: str, name: str, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(f"{kind}:{name}")
        await cache.serve(kind, name, r, w)

    relay = Relay(SECRET, lambda sid: "", serve)
    address = await relay.start("127.0.0.1", 0)
    node = Node("n" * 32, "127.0.0.1", True, {}, relay=address)
    try:
        yield Pair(ImageStore(tmp / "cp-images"), cache, node, seen)
    finally:
        await relay.close()


def run(tmp: Path, scenario: Callable[[Pair], Awaitable[None]]) -> None:
    async def main() -> None:
        async with node_and_control_plane(tmp) as pair:
            await scenario(pair)

    asyncio.run(asyncio.wait_for(main(), 60))


def one_layer_image(store: ImageStore, tmp: Path, text: str) -> tuple[str, str]:
    key = content_key("test", text)
    store.commit_layer(key, layer_tree(tmp / f"tree-{key}", text))
    return key, store.put([key], ImageConfig(env={"A": "1"})).id


def test_a_layer_arrives_whole_and_once_for_concurrent_creates(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        key, image_id = one_layer_image(pair.cp, tmp_path, "hello\n")
        shipping = pair.shipping()
        await asyncio.gather(*(shipping.ensure_image(pair.node_ref, image_id) for _ in range(4)))
        assert pair.transfers == [f"layer:{key}"]  # one copy for four creates
        arrived = pair.node.store.layer_path(key)
        assert tree_digest(arrived) == layer_digest(pair.cp, key)
        assert (arrived / "etc/hello").read_text() == "hello\n"
        assert stat.S_ISCHR(os.lstat(arrived / "etc/gone").st_mode)
        assert os.getxattr(arrived / "etc/opaque", "trusted.overlay.opaque") == b"y"
        assert os.stat(arrived / "etc/hello").st_uid == IMAGE_UID
        assert pair.node.store.get(image_id).config.env == {"A": "1"}
        # A second image on the same layer ships nothing.
        other = pair.cp.put([key], ImageConfig(env={"B": "2"})).id
        await shipping.ensure_image(pair.node_ref, other)
        assert pair.transfers == [f"layer:{key}"]

    run(tmp_path, scenario)


def test_a_layer_that_does_not_hash_to_its_digest_is_not_kept(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        key, image_id = one_layer_image(pair.cp, tmp_path, "hello\n")
        (pair.cp.root / "layers" / f".{key}.digest").write_text("sha256:" + "0" * 64)
        with pytest.raises(TransferFailed, match="arrived as sha256:"):
            await pair.shipping().ensure_image(pair.node_ref, image_id)
        assert not pair.node.store.has_layer(key)
        assert list((pair.node.store.root / "tmp").iterdir()) == []  # nothing half-made left

    run(tmp_path, scenario)


def test_without_the_cluster_secret_nothing_gets_in(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        key, image_id = one_layer_image(pair.cp, tmp_path, "hello\n")
        with pytest.raises(TransferFailed, match="bad proof"):
            await pair.shipping(b"w" * 64).ensure_image(pair.node_ref, image_id)
        assert pair.transfers == [] and not pair.node.store.has_layer(key)

    run(tmp_path, scenario)


def test_a_staged_tree_is_taken_once_and_checked(tmp_path: Path) -> None:
    async def scenario(pair: Pair) -> None:
        scratch = pair.node.scratch("layer")
        layer_tree(scratch / "tree", "made on the node\n")
        name, digest = await pair.node.stage(scratch / "tree")
        shipping = pair.shipping()
        dest = tmp_path / "back"
        await shipping.take(pair.node_ref, name, digest, dest)
        assert (dest / "etc/hello").read_text() == "made on the node\n"
        assert tree_digest(dest) == digest
        assert not scratch.exists()  # the node's copy went once taken
        with pytest.raises(TransferFailed):  # taken once: nothing is staged under it now
            await shipping.take(pair.node_ref, name, digest, tmp_path / "again")
        assert not (tmp_path / "again").exists()

    run(tmp_path, scenario)


def test_a_sender_gone_quiet_mid_layer_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cove.runtime import endpoint
    from cove.runtime.ray import transfer

    monkeypatch.setattr(transfer, "IDLE_TIMEOUT", 0.5)  # seconds of silence before giving up

    async def scenario(pair: Pair) -> None:
        key = "ab" * 16
        assert pair.node_ref.relay is not None
        host, port = pair.node_ref.relay
        sock = await endpoint.RelayEndpoint(host, port, f"layer:{key}", SECRET).connect()
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"sha256:" + b"0" * 64 + b"\n" + b"\0" * 1024)  # a tar begun, then silence
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 30)
        assert answer.startswith(b"NO ") and b"TimeoutError" in answer, answer
        writer.close()
        assert not pair.node.store.has_layer(key)
        assert list((pair.node.store.root / "tmp").iterdir()) == []

    run(tmp_path, scenario)
