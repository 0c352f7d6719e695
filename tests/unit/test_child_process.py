"""The agent's `Child` on a real process tree in a real cgroup: terminate, kill, drain,
with the command joining its cgroup in the agent's fork and through the joining shell.

Each scenario runs in its own interpreter, as the agent would: the reaper
waits on every child (`waitpid(-1)`) and the process becomes a subreaper,
which must not happen to the test session's own process. The tree lives in
a freezer cgroup made for the test, so a `setsid` grandchild (out of reach
of process-group signals) is part of it, as in a sandbox.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

FREEZER = Path("/sys/fs/cgroup/freezer")

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys

    from cove.agent.proc.cgroups import Tracker
    from cove.agent.proc.child import exits
    from cove.agent.proc.harden import harden_self
    from cove.agent.proc.output import CappedOutput
    from cove.agent.proc.reaper import Reaper
    from cove.agent.proc.spawn import Spawner, SpawnSpec

    CGROUP_DIR, WORK, JOIN_SHELL = sys.argv[1], sys.argv[2], sys.argv[3] or None
    ENV = {"PATH": "/usr/bin:/bin"}

    async def emptied(group, timeout=10.0):
        # SIGKILL is delivered, and the reaper (in this loop) reaps, a moment
        # after kill() returns: wait for the members to go, with a deadline.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (pids := group.pids()) and loop.time() < deadline:
            await exits(pids, 0.2)
            await asyncio.sleep(0)  # let the reaper's callbacks run
        return group.pids()

    async def start(spawner, name, script, stdin=False):
        out = CappedOutput(1 << 20)
        ready = asyncio.Event()

        def on_stdout(data):
            out.on_stdout(data)
            if b"ready" in out.stdout:
                ready.set()

        group = spawner.tracker.new_group(name)
        spec = SpawnSpec(["bash", "-c", script], WORK, ENV, stdin_pipe=stdin, via_shell=True)
        child = await spawner.spawn(spec, group, on_stdout, out.on_stderr)
        return child, out, ready

    async def terminate(spawner):
        marks = os.path.join(WORK, "marks")
        # The main process ends on SIGTERM (exit 7 from its trap); a setsid'd
        # grandchild notes the SIGTERM and carries on, so only SIGKILL ends it.
        script = f'''
          setsid bash -c 'trap "echo grandchild-TERM >> {marks}" TERM
                          echo $$ > {marks}.pid; echo ready
                          while :; do sleep 100 & wait $!; done' &
          trap "echo main-TERM >> {marks}; exit 7" TERM
          sleep 100 & wait $!
        '''
        child, out, ready = await start(spawner, "terminate", script)
        await asyncio.wait_for(ready.wait(), 10)
        grandchild = int(open(marks + ".pid").read())
        # The grace must outlast both traps on a loaded host (a 1 s grace was
        # missed under a load of 9 on 2 cores); the grandchild ignores TERM,
        # so the whole grace is waited out either way.
        await child.terminate(grace=5.0)
        assert child.exited.result() == 7, child.exited.result()
        assert await exits([grandchild], 10)
        assert sorted(open(marks).read().split()) == ["grandchild-TERM", "main-TERM"]
        assert await emptied(child.group) == []
        print("terminate ok")

    async def kill(spawner):
        script = "setsid sleep 300 & echo ready; sleep 300"
        child, out, ready = await start(spawner, "kill", script)
        await asyncio.wait_for(ready.wait(), 10)
        assert len(child.group.pids()) == 2
        child.kill()
        assert await asyncio.wait_for(child.exited, 10) == 137
        assert await emptied(child.group) == []
        print("kill ok")

    async def drain(spawner):
        # A background process keeps the pipes open after the main one exits.
        child, out, ready = await start(spawner, "drain", "sleep 300 & echo ready; exit 3")
        assert await asyncio.wait_for(child.exited, 10) == 3
        await asyncio.wait_for(child.drain(), 10)
        assert bytes(out.stdout) == b"ready\\n"
        assert not child.output.pending()
        # Held back by a slow reader, the drain waits for it instead of dropping output.
        script = "read go; echo held; exit 4"
        child2, out2, _ = await start(spawner, "drain-held", script, stdin=True)
        child2.pause_output()
        child2.stdin.write(b"go\\n")
        child2.close_stdin()
        assert await asyncio.wait_for(child2.exited, 10) == 4
        draining = asyncio.ensure_future(child2.drain(window=0.05))
        await asyncio.wait({draining}, timeout=0.5)
        assert not draining.done() and bytes(out2.stdout) == b""
        child2.resume_output()
        await asyncio.wait_for(draining, 10)
        assert bytes(out2.stdout) == b"held\\n"
        child.kill()
        print("drain ok")

    async def joined(spawner):
        # In its own cgroup before its first line runs, and with the environment
        # it would have had without a joining shell (compared by the test).
        child, out, _ = await start(spawner, "joined", "grep freezer /proc/self/cgroup; env")
        assert await asyncio.wait_for(child.exited, 10) == 0
        await asyncio.wait_for(child.drain(), 10)
        first, *env = bytes(out.stdout).decode().splitlines()
        assert first.endswith("/joined"), first
        print("env", sorted(env))
        print("joined ok")

    async def early(spawner):
        # Killed before its joining shell has joined its cgroup (an exec whose
        # timeout is almost nothing): that shell, held here until a writer opens
        # a FIFO nobody opens, so that the kill surely comes first, must die
        # rather than go on to run the command.
        if JOIN_SHELL:
            gate = os.path.join(WORK, "never-opened")
            os.mkfifo(gate)
            held = os.path.join(WORK, "held-join-shell")
            with open(held, "w") as f:
                f.write(f"#!{sys.executable}\\nimport os, sys\\nopen({gate!r}).close()\\n"
                        f"os.execv({JOIN_SHELL!r}, [{JOIN_SHELL!r}, *sys.argv[1:]])\\n")
            os.chmod(held, 0o755)
            spawner = Spawner(spawner.tracker, spawner.reaper, held)
        # A kill that missed it would leave it held (or `sleep 30` running): no 137 in 10 s.
        child, out, _ = await start(spawner, "early", "sleep 30")
        child.kill()
        assert await asyncio.wait_for(child.exited, 10) == 137
        assert await emptied(child.group) == []
        print("early ok")

    async def main():
        harden_self()
        spawner = Spawner(Tracker(CGROUP_DIR), Reaper(), JOIN_SHELL)
        await early(spawner)
        await joined(spawner)
        await terminate(spawner)
        await kill(spawner)
        await drain(spawner)

    asyncio.run(main())
    """
)


@pytest.fixture
def cgroup_dir(tmp_path: Path) -> Iterator[Path]:
    """A control directory as the runtime makes it: `track` is a freezer cgroup."""
    if not os.access(FREEZER, os.W_OK):
        pytest.skip("needs a writable cgroup v1 freezer hierarchy (root), as sandboxes do")
    track = FREEZER / f"cove-unit-{uuid.uuid4().hex[:12]}"
    track.mkdir()
    (tmp_path / "ctl").mkdir()
    (tmp_path / "ctl" / "track").symlink_to(track)
    try:
        yield tmp_path / "ctl"
    finally:
        for sub in [p for p in track.iterdir() if p.is_dir()]:
            _empty(sub)
            sub.rmdir()
        track.rmdir()


def _empty(cgroup: Path) -> None:
    """SIGKILL what a failed scenario left in a cgroup, and wait until it is gone."""
    for pid in map(int, (cgroup / "cgroup.procs").read_text().split()):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            select.select([fd], [], [], 10)
        finally:
            os.close(fd)


def test_terminate_kill_and_drain_a_real_tree(cgroup_dir: Path, tmp_path: Path) -> None:
    envs = []
    for join_shell in ("", "/usr/bin/sh"):  # joined in the fork; by the joining shell
        work = tmp_path / f"work{len(envs)}"
        work.mkdir()
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(cgroup_dir), str(work), join_shell],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        early, env, *done = out.stdout.split("\n")
        assert early == "early ok"
        assert done == ["joined ok", "terminate ok", "kill ok", "drain ok", ""]
        envs.append(env.replace(str(work), "WORK"))
    assert envs[0] == envs[1]
