"""Starting user processes: into their cgroup, watched by the reaper, as a `Child`.

Every process starts as a session leader (its own process group) and joins
its cgroups before any of its own code runs. Its exit status is the
reaper's (see `reaper`): `subprocess.Popen` is used to fork and exec only,
never to wait.

How it joins them: a shell command, when the sandbox has a shell it cannot
change (`join_shell`), is started as that shell, which writes itself into the
cgroups and then execs the command; anything else joins between fork and
exec, in Python. The first is a vfork: the agent waits ~0.2 ms instead of
~2.8 ms for a fork of its own memory and Python run in the copy (measured
on this host, `/bin/bash -c true` from a 34 MB python3), which was most of
the agent's CPU per exec. Only a shell command: the joining shell sets PWD
to the working directory, which the command's own shell does too.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import termios
from dataclasses import dataclass

from cove.agent.proc.cgroups import Group, Tracker, join_cgroups
from cove.agent.proc.child import Child
from cove.agent.proc.output import PipeOutput, Sink
from cove.agent.proc.reaper import Reaper
from cove.agent.proc.terminal import PtyChild, Terminal, set_winsize


@dataclass
class SpawnSpec:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdin_pipe: bool = False
    # Extra descriptors the child inherits (e.g. a private channel to a worker).
    pass_fds: tuple[int, ...] = ()
    # Enlarge the output pipes from the start (a writer known to be heavy);
    # otherwise a pipe grows when it is first found full.
    large_pipes: bool = False
    # argv is a shell's `-c` command (a joining shell in front changes nothing it sees).
    via_shell: bool = False


# Writes "0" (itself) into each file before `--`, then execs what follows.
# Errors are silent, as `join_cgroups`'s: a file may be missing on some hosts.
JOIN_SCRIPT = (
    'for f do shift; [ "$f" = -- ] && break; { echo 0 >"$f"; } 2>/dev/null; done; exec "$@"'
)


class _Discard(asyncio.BaseProtocol):
    """The protocol of a write-only pipe: nothing comes back on it."""


class Spawner:
    def __init__(self, tracker: Tracker, reaper: Reaper, join_shell: str | None = None) -> None:
        self.tracker = tracker
        self.reaper = reaper
        self.join_shell = join_shell

    def _watch(self, proc: subprocess.Popen[bytes], group: Group) -> asyncio.Future[int]:
        exited = self.reaper.watch(proc.pid)
        # Tell subprocess the child is ours to reap, so its own cleanup never
        # calls waitpid on a pid that may since have been reused.
        exited.add_done_callback(lambda f: setattr(proc, "returncode", f.result()))
        group.pgid = proc.pid
        return exited

    async def spawn(self, spec: SpawnSpec, group: Group, on_stdout: Sink, on_stderr: Sink) -> Child:
        """Start `spec` in `group` with its stdout and stderr read into the sinks."""
        files = self.tracker.enter_files(group)
        argv, in_child = spec.argv, None
        if files and spec.via_shell and self.join_shell:
            argv = [self.join_shell, "-c", JOIN_SCRIPT, "cove-join", *files, "--", *argv]
        elif files:

            def in_child() -> None:  # between fork and exec
                join_cgroups(files)

        proc = subprocess.Popen(
            argv,
            cwd=spec.cwd,
            env=spec.env,
            stdin=subprocess.PIPE if spec.stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=in_child,
            close_fds=True,
            pass_fds=spec.pass_fds,
        )
        exited = self._watch(proc, group)
        assert proc.stdout is not None and proc.stderr is not None
        output = await PipeOutput.open(
            proc.stdout, proc.stderr, on_stdout, on_stderr, large=spec.large_pipes
        )
        stdin = None
        if proc.stdin is not None:
            loop = asyncio.get_running_loop()
            pipe = os.fdopen(os.dup(proc.stdin.fileno()), "wb", buffering=0)
            proc.stdin.close()
            stdin, _ = await loop.connect_write_pipe(_Discard, pipe)
        return Child(proc.pid, group, self.tracker, exited, output, stdin)

    def spawn_pty(
        self, spec: SpawnSpec, group: Group, cols: int, rows: int, on_output: Sink
    ) -> PtyChild:
        """Start `spec` as a session leader whose controlling terminal is a new PTY."""
        master, slave = os.openpty()  # both non-inheritable; Popen dups the slave onto 0-2
        files = self.tracker.enter_files(group)

        def in_child() -> None:  # after setsid (start_new_session), before exec
            join_cgroups(files)
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        try:
            set_winsize(master, cols, rows)
            proc = subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env=spec.env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                preexec_fn=in_child,
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)  # once the child is gone, reads of the master end with EIO
        exited = self._watch(proc, group)
        return PtyChild(proc.pid, group, self.tracker, exited, Terminal(master, on_output))
