"""The SDK's public PTY API (Daytona's names) drives a real shell in a real
sandbox, on both faces: input, output, resize, reconnect, kill, exit code."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from cove import AsyncCove, Sandbox
from cove.sdk import Conflict, Gone, PtyHandle, PtySize
from tests.serverproc import ServerProcess


def _id() -> str:
    return f"pty-{uuid.uuid4().hex[:8]}"


class Screen:
    """Everything a sync handle printed; `until` reads on until a text shows."""

    def __init__(self, handle: PtyHandle) -> None:
        self.handle, self.seen = handle, b""

    def until(self, needle: bytes) -> bytes:  # the test's timeout bounds a hang
        if needle in self.seen:
            return self.seen
        for data in self.handle:
            self.seen += data
            if needle in self.seen:
                return self.seen
        raise AssertionError(f"the PTY ended before {needle!r}: {self.seen[-300:]!r}")


def test_sync_input_output_resize_and_exit_code(csb: Sandbox) -> None:
    p, pid = csb.process, _id()
    with p.create_pty_session(pid, envs={"GREETING": "hi"}, pty_size=PtySize(30, 100)) as pty:
        assert pty.session_id == pid and pty.is_connected()
        screen = Screen(pty)
        pty.send_input("echo $GREETING-$((40+2)); stty size\n")
        screen.until(b"hi-42")
        screen.until(b"30 100")
        info = pty.resize(PtySize(rows=40, cols=120))
        assert (info.rows, info.cols) == (40, 120)
        pty.send_input(b"stty size\n")
        screen.until(b"40 120")
        assert p.resize_pty_session(pid, PtySize(rows=10, cols=20)).cols == 20
        assert p.get_pty_session_info(pid).rows == 10
        assert pid in [s.id for s in p.list_pty_sessions()]
        pty.send_input("exit 3\n")
        result = pty.wait()
        assert (result.exit_code, result.error, pty.exit_code) == (3, None, 3)
        assert not pty.is_connected()
        with pytest.raises(Gone):
            pty.send_input("echo late\n")
    assert pid not in [s.id for s in p.list_pty_sessions()]


def test_sync_reconnect_idle_wait_and_kill(csb: Sandbox) -> None:
    p, pid = csb.process, _id()
    first = p.create_pty_session(pid)
    first.send_input("echo marker-$((6*7))\n")
    Screen(first).until(b"marker-42")
    first.disconnect()
    again = p.connect_pty_session(pid)  # the shell kept running; its scrollback replays
    Screen(again).until(b"marker-42")
    idle = again.wait(timeout=0.2)  # nothing happens: it returns, still connected
    assert idle.exit_code is None and again.is_connected()
    with pytest.raises(Conflict):
        p.create_pty_session(pid)
    again.kill()
    killed = again.wait()
    assert killed.exit_code is not None and killed.exit_code != 0
    assert pid not in [s.id for s in p.list_pty_sessions()]


def test_async_face(server: ServerProcess, csb: Sandbox) -> None:
    async def main() -> None:
        async with AsyncCove(api_url=server.api_url, api_key=server.key, keep=True) as c:
            p, pid = (await c.get(csb.id)).process, _id()
            seen = bytearray()
            arrived = asyncio.Event()
            needle = [b""]

            async def on_data(data: bytes) -> None:  # async handlers are awaited
                seen.extend(data)
                if needle[0] in seen:
                    arrived.set()

            async def expect(text: bytes) -> None:
                needle[0] = text
                if text not in seen:
                    arrived.clear()
                    await asyncio.wait_for(arrived.wait(), 30)

            pty = await p.create_pty_session(pid, on_data, pty_size=PtySize(rows=25, cols=90))
            await pty.send_input("echo async-$((40+2)); stty size\n")
            await expect(b"async-42")
            await expect(b"25 90")
            assert (await pty.resize(PtySize(rows=33, cols=77))).cols == 77
            await pty.send_input("stty size\n")
            await expect(b"33 77")
            assert pid in [s.id for s in await p.list_pty_sessions()]
            await pty.send_input("exit 5\n")
            result = await pty.wait()
            assert (result.exit_code, pty.is_connected()) == (5, False)

            other = await p.create_pty_session(_id())
            await other.kill()
            assert (await other.wait()).exit_code not in (None, 0)
            await other.disconnect()

    asyncio.run(main())
