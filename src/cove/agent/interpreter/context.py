"""One interpreter context, agent side: its worker process and its runs.

A context owns at most one worker (`interp_worker.py`) at a time, started
lazily and in its own cgroup. Runs on a context queue on a lock, so two
clients never interleave their code in one namespace. A run that must stop
(timeout, explicit interrupt, client gone) is first interrupted with SIGINT
to the worker's process group, like Ctrl-C in a terminal, so the context
keeps its variables; only a worker that ignores that for `GRACE` seconds is
killed, and the context remembers to tell the next run its state was lost.
"""

from __future__ import annotations

import asyncio
import codecs
import enum
import socket
import time
from collections.abc import Callable
from typing import Any

from cove.agent import scripts
from cove.agent.core import Agent
from cove.agent.interpreter.worker_link import CHANNEL_LIMIT, WorkerProcess
from cove.agent.proc.spawn import SpawnSpec
from cove.wire.errors import InternalError
from cove.wire.protocol.interpreter import InterpreterContext

WORKER = scripts.path("interp_worker.py")
# How long an interrupted run may take to unwind before its worker is killed.
GRACE = 2.0
START_TIMEOUT = 20.0
STRAY_CAP = 8192

Emit = Callable[[dict[str, Any]], None]


class Outcome(enum.Enum):
    DONE = "done"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    DISCONNECTED = "disconnected"


class RunControl:
    """How a caller stops one run (its own, never the one queued before it)."""

    def __init__(self) -> None:
        self.stopped = asyncio.Event()
        self.outcome = Outcome.INTERRUPTED

    def stop(self, outcome: Outcome) -> bool:
        if self.stopped.is_set():
            return False
        self.outcome = outcome
        self.stopped.set()
        return True


class Context:
    def __init__(self, agent: Agent, context_id: str, cwd: str, language: str = "python") -> None:
        self.agent = agent
        self.id = context_id
        self.cwd = cwd
        self.language = language
        self.created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.worker: WorkerProcess | None = None
        self.lost: str | None = None  # why the last worker was killed, told to the next run
        self.lock = asyncio.Lock()
        self._sink: Emit | None = None
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._running: RunControl | None = None
        self._stray = bytearray()
        self.closed = False

    def info(self) -> InterpreterContext:
        active = self.worker is not None and self.worker.alive
        return InterpreterContext(self.id, active, self.created_at, self.cwd, self.language)

    # -- output -------------------------------------------------------------
    def _output(self, stream: str, data: bytes) -> None:
        sink = self._sink
        if sink is None:
            # Between runs (a background thread printing, a failed start): keep a tail.
            self._stray += data
            del self._stray[:-STRAY_CAP]
            return
        decoder = self._decoders.setdefault(
            stream, codecs.getincrementaldecoder("utf-8")("replace")
        )
        text = decoder.decode(data)
        if text:
            sink({"type": stream, "text": text})

    def throttle(self, slow: bool) -> None:
        """The run's client cannot keep up (True) or has caught up (False)."""
        running = self._running
        if running is None or running.stopped.is_set():
            return  # a stopping run must be able to unwind, however slow its client
        if self.worker is not None:
            self.worker.set_flowing(not slow)

    def _flush_decoders(self) -> None:
        for stream, decoder in self._decoders.items():
            text = decoder.decode(b"", final=True)
            if text and self._sink is not None:
                self._sink({"type": stream, "text": text})
        self._decoders.clear()

    # -- worker lifecycle -----------------------------------------------------
    async def start(self) -> WorkerProcess:
        if self.worker is not None and self.worker.alive:
            return self.worker
        python = self.agent.python("the code interpreter")
        ours, theirs = socket.socketpair()
        env = self.agent.child_env(None)
        env["MPLBACKEND"] = "Agg"  # no display in a sandbox; figures come back as PNG
        group = self.agent.new_group("interp")
        self._stray.clear()
        try:
            child = await self.agent.spawner.spawn(
                SpawnSpec(
                    [python, "-u", WORKER, str(theirs.fileno())],
                    self.cwd,
                    env,
                    pass_fds=(theirs.fileno(),),
                    # Bigger reads, fewer frames: clients that append each frame to
                    # a string (the official SDK does) copy far less on heavy output.
                    large_pipes=True,
                ),
                group,
                lambda d: self._output("stdout", d),
                lambda d: self._output("stderr", d),
            )
        except OSError as exc:
            ours.close()
            self.agent.release_group(group)
            raise InternalError(f"cannot start the interpreter worker: {exc}") from None
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=CHANNEL_LIMIT)
        worker = WorkerProcess(child, reader, writer)
        try:
            ready = await asyncio.wait_for(worker.messages.get(), START_TIMEOUT)
        except TimeoutError:
            ready = None
        if ready is None or ready.get("type") != "ready":
            await self._kill(worker)
            tail = bytes(self._stray).decode("utf-8", "replace").strip()
            raise InternalError(f"the interpreter worker failed to start: {tail or 'no output'}")
        self.worker = worker
        return worker

    async def _kill(self, worker: WorkerProcess) -> None:
        """End the worker and everything it started (its whole cgroup)."""
        worker.child.kill()
        await worker.child.wait(5)
        worker.child.close_output()
        worker.writer.close()
        worker.reading.cancel()
        self.agent.release_group(worker.group)
        if self.worker is worker:
            self.worker = None

    async def close(self) -> None:
        self.closed = True
        if self._running is not None:
            self._running.stop(Outcome.INTERRUPTED)
        if self.worker is not None:
            await self._kill(self.worker)

    # -- runs -----------------------------------------------------------------
    def interrupt(self) -> bool:
        """Ask the running execution to stop; False if nothing is running."""
        running = self._running
        return running is not None and running.stop(Outcome.INTERRUPTED)

    async def run(
        self,
        job: dict[str, Any],
        timeout: float | None,
        emit: Emit,
        control: RunControl,
    ) -> Outcome:
        """Run `job` (`code`, `envs`, optional `stdin`) in this context's worker."""
        async with self.lock:
            if control.stopped.is_set():  # its client left while it waited in line
                return control.outcome
            if self.closed:
                emit(_error("ContextDeleted", f"context {self.id!r} was deleted"))
                return Outcome.DONE
            if self.lost is not None:
                # Said once, plainly, instead of running code whose setup is gone.
                emit(_error("ContextRestarted", self.lost))
                self.lost = None
                return Outcome.DONE
            worker = await self.start()
            self._sink = emit
            self._running = control
            try:
                return await self._run(worker, job, timeout, emit, control)
            finally:
                worker.set_flowing(True)  # between runs nothing may block the worker
                self._flush_decoders()
                self._sink = None
                self._running = None

    async def _run(
        self,
        worker: WorkerProcess,
        job: dict[str, Any],
        timeout: float | None,
        emit: Emit,
        control: RunControl,
    ) -> Outcome:
        worker.send(job)
        pump = asyncio.create_task(self._pump(worker, emit))
        aborted = asyncio.create_task(control.stopped.wait())
        try:
            done, _ = await asyncio.wait(
                {pump, aborted}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if pump in done:
                return Outcome.DONE
            outcome = control.outcome if control.stopped.is_set() else Outcome.TIMEOUT
            control.stop(outcome)
            worker.set_flowing(True)  # a worker blocked writing to a slow client must see it
            worker.interrupt()
            done, _ = await asyncio.wait({pump}, timeout=GRACE)
            if pump not in done:
                await self._kill(worker)
                self.lost = (
                    f"context {self.id!r} was restarted: its worker did not stop within "
                    f"{GRACE:g}s of an interrupt ({outcome.value}) and was killed, "
                    "so its state (variables, imports) was lost"
                )
            return outcome
        except asyncio.CancelledError:
            # The agent is shutting down mid-run: leave nothing running.
            await self._kill(worker)
            raise
        finally:
            aborted.cancel()
            pump.cancel()

    async def _pump(self, worker: WorkerProcess, emit: Emit) -> None:
        """Forward the worker's frames until it says the run is done."""
        while True:
            msg = await worker.messages.get()
            await worker.drain_output()
            if msg is None:
                code = await _exit_code(worker)
                await self._kill(worker)
                if self.closed:
                    emit(_error("ContextDeleted", f"context {self.id!r} was deleted"))
                    return
                emit(
                    _error(
                        "ContextRestarted",
                        f"the interpreter process of context {self.id!r} exited ({code}); "
                        "its state was lost and the next run starts a fresh one",
                    )
                )
                return
            kind = msg.get("type")
            if kind == "done":
                return
            if kind == "result" and isinstance(msg.get("data"), dict):
                emit(
                    {
                        "type": "result",
                        "data": msg["data"],
                        "isMainResult": bool(msg.get("isMainResult")),
                    }
                )
                if msg.get("ack"):  # the worker waits: output before it is all out now
                    worker.send({"type": "ack"})
            elif kind == "error":
                emit(
                    _error(
                        str(msg.get("name", "")), str(msg.get("value", "")), msg.get("traceback")
                    )
                )


async def _exit_code(worker: WorkerProcess) -> str:
    code = await worker.child.wait(1)
    return "closed its channel" if code is None else f"exit code {code}"


def _error(name: str, value: str, tb: Any = None) -> dict[str, Any]:
    return {"type": "error", "name": name, "value": value, "traceback": str(tb or "")}
