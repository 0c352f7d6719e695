"""Layer trees across the relay: a tar stream each way, checked by digest on arrival.

Both kinds ride the node relay's handshake (runtime/endpoint.py): the
control plane proves it holds the cluster secret for a *target*, which for
a transfer names the tree instead of a sandbox:

    layer:<key>   control plane -> node: `<digest>\\n`, the tar, end of stream;
                  the node answers `OK\\n` once the tree hashes to <digest>
                  and sits in its image cache, or `NO <reason>\\n`
    take:<name>   node -> control plane: the tar of a tree the node staged
                  (a build step's layer, a sandbox's changes), then close;
                  the control plane checks it against the digest the node
                  gave over Ray when it staged it

GNU tar carries what a layer is made of (owners, devices for whiteouts,
the `trusted.overlay.*` attributes of opaque directories), so both ends run
as root. Streams pass in pieces with backpressure: a layer is never held
in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

from cove.images.treedigest import tree_digest
from cove.wire.errors import SandboxError

PIECE = 256 * 1024
# A sender that goes quiet this long mid-tree is gone (its host, or the network
# between): the receiver gives up instead of holding a half-made tree for ever.
IDLE_TIMEOUT = 120.0
MAX_LINE = 512
LAYER, TAKE = "layer", "take"
KINDS = (LAYER, TAKE)
TAR = ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*"]


class TransferFailed(SandboxError):
    """A tree did not arrive whole (a cut stream, a digest that does not match)."""


async def send_tree(tree: Path, writer: asyncio.StreamWriter) -> None:
    """`tree` as a tar stream into `writer` (the caller ends the stream)."""
    proc = await asyncio.create_subprocess_exec(
        *TAR, "-C", str(tree), "-cf", "-", ".",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        while piece := await proc.stdout.read(PIECE):
            writer.write(piece)
            await writer.drain()
        err = await proc.stderr.read()
    except BaseException:  # the peer went away (or we were cancelled): tar goes too
        _kill(proc)
        raise
    finally:
        await proc.wait()
    if proc.returncode != 0:
        raise TransferFailed(f"tar of {tree.name} failed: {err.decode(errors='replace')[-300:]}")


def end_stream(writer: asyncio.StreamWriter) -> None:
    if writer.can_write_eof():
        writer.write_eof()


async def receive_tree(reader: asyncio.StreamReader, dest: Path, digest: str) -> None:
    """A tar stream from `reader` (until its end) unpacked at `dest` (made here),
    which must then hash to `digest`; TransferFailed (and `dest` removed) if not."""
    dest.mkdir()
    proc = await asyncio.create_subprocess_exec(
        *TAR, "--same-owner", "--same-permissions", "-C", str(dest), "-xf", "-",
        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None
    try:
        try:
            while piece := await asyncio.wait_for(reader.read(PIECE), IDLE_TIMEOUT):
                proc.stdin.write(piece)
                await proc.stdin.drain()
            proc.stdin.close()
            err = await proc.stderr.read()
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:  # cut, quiet, tar quit
            _kill(proc)
            raise TransferFailed(f"{dest.name} did not arrive whole: {exc!r}") from None
        except BaseException:
            _kill(proc)
            raise
        finally:
            await proc.wait()
        if proc.returncode != 0:
            raise TransferFailed(
                f"unpacking {dest.name} failed: {err.decode(errors='replace')[-300:]}"
            )
        got = await asyncio.to_thread(tree_digest, dest)
        if got != digest:
            raise TransferFailed(f"{dest.name} arrived as {got}, not the {digest} that was sent")
    except BaseException:
        await asyncio.to_thread(remove, dest)
        raise


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def remove(tree: Path) -> None:
    shutil.rmtree(tree, ignore_errors=True)


async def read_line(reader: asyncio.StreamReader) -> str:
    line = await reader.readuntil(b"\n")
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    return line.decode("utf-8", errors="replace").strip()
