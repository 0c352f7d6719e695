"""One interpreter context: a Python process that keeps its globals between runs.

Started by the agent as `python3 -u interp_worker.py FD` where FD is the
worker's end of a private socketpair. The user's stdin is /dev/null (so
`input()` gets EOF instead of the next command), and fds 1/2 are pipes the
agent streams as stdout/stderr frames, so output of `os.system` and
`subprocess` children is captured too. Standard library only, and nothing
heavy at start: numpy and friends load only when the user imports them.

Channel (newline-delimited JSON):
  agent -> worker  {"code": str, "envs": {str: str}, "stdin": str | null}
  worker -> agent  {"type": "ready"} once; then per run any number of
                   {"type": "result", "data": {mime: str}, "isMainResult": bool,
                    "ack": true}  (the worker then waits for {"type": "ack"})
                   {"type": "error", "name", "value", "traceback"}
                   and finally {"type": "done"}.
SIGINT raises KeyboardInterrupt only while user code runs; between runs it
is ignored, so a late interrupt cannot kill the worker or corrupt the channel.
"""

from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import importlib.util
import io
import json
import linecache
import os
import signal
import socket
import sys
import threading
import traceback
import types
from typing import Any

CELL_PREFIX = "<cell-"
REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("image/svg+xml", "_repr_svg_"),
    ("text/markdown", "_repr_markdown_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
)


class Channel:
    def __init__(self, fd: int) -> None:
        os.set_inheritable(fd, False)  # never leak the channel to os.system children
        self.sock = socket.socket(fileno=fd)
        self.reader = self.sock.makefile("rb")
        self.lock = threading.Lock()

    def send(self, msg: dict[str, Any]) -> None:
        _flush_std()  # output printed before a result must reach the agent before it
        data = (json.dumps(msg, default=str) + "\n").encode()
        # An interrupt landing mid-sendall would leave half a frame on the
        # channel; hold SIGINT until the frame is out (it fires right after).
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with self.lock:
                self.sock.sendall(data)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def request(self, msg: dict[str, Any]) -> None:
        """Send, then wait until the agent has forwarded everything printed before.

        Output and messages travel on different descriptors; holding the code
        until the agent acks keeps a result after the output that preceded
        it and before the output that follows.
        """
        self.send({**msg, "ack": True})
        while (reply := self.recv()) is not None:
            if reply.get("type") == "ack":
                return
        raise SystemExit("the agent closed the channel")

    def recv(self) -> dict[str, Any] | None:
        line = self.reader.readline()
        if not line:
            return None
        msg = json.loads(line)
        return msg if isinstance(msg, dict) else None


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # the user may have closed or replaced them
            stream.flush()


def _line_buffered() -> None:
    """One write per line, not per print() argument: whole lines make whole frames.

    Text without a newline waits for the next newline, an explicit flush(),
    a result, or the end of the run (a terminal behaves the same way).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]


def _load_charts() -> Any:
    """charts.py sits next to this file; load it by path (cove is not on sys.path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "charts.py")
    spec = importlib.util.spec_from_file_location("_cove_charts", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Worker:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.running = False
        self.cells = 0
        self.charts = _load_charts()
        self.main = types.ModuleType("__main__")
        self.main.__dict__["__builtins__"] = builtins
        self.main.__dict__["display"] = self.display
        # Functions and classes the user defines pickle as __main__.X.
        sys.modules["__main__"] = self.main
        self.charts.on_pyplot(lambda pyplot: self.charts.patch_show(pyplot, self.emit_figure))

    # -- rich output -------------------------------------------------------
    def bundle(self, value: object) -> dict[str, str]:
        data: dict[str, str] = {}
        try:
            data["text/plain"] = repr(value)
        except Exception as exc:
            data["text/plain"] = f"<repr failed: {type(exc).__name__}: {exc}>"
        if self.charts.is_figure(value):
            data["image/png"] = self.charts.figure_png(value)
            return data
        for mime, method in REPR_METHODS:
            # Look on the type: objects with a catch-all __getattr__ claim every method.
            if not callable(getattr(type(value), method, None)):
                continue
            try:
                out = getattr(value, method)()
            except Exception as exc:
                # The user's own formatter failed: say so on stderr, as IPython
                # does, and fall back to the next representation.
                print(f"{type(value).__name__}.{method}() failed: {exc!r}", file=sys.stderr)
                continue
            if isinstance(out, tuple):  # (data, metadata), IPython's convention
                out = out[0] if out else None
            if out is None:
                continue
            if isinstance(out, bytes):
                out = base64.b64encode(out).decode("ascii")
            elif not isinstance(out, str):
                out = json.dumps(out, default=str)
            data[mime] = out
        return data

    def result(self, data: dict[str, str], *, main: bool) -> None:
        msg = {"type": "result", "data": data, "isMainResult": main}
        if self.running and threading.current_thread() is threading.main_thread():
            self.channel.request(msg)
        else:  # only the main thread reads the channel; others cannot wait for acks
            self.channel.send(msg)

    def display(self, *values: object) -> None:
        """Like IPython's display(): each value becomes a (non-main) result frame."""
        for value in values:
            self.result(self.bundle(value), main=False)

    def emit_figure(self, fig: Any) -> None:
        self.display(fig)

    # -- running code ------------------------------------------------------
    def on_sigint(self, signum: int, frame: Any) -> None:
        if self.running:
            raise KeyboardInterrupt

    def execute(self, code: str) -> None:
        self.cells += 1
        filename = f"{CELL_PREFIX}{self.cells}>"
        # Tracebacks and inspect.getsource() find the cell's lines here.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec")
        last = None
        tail = tree.body[-1] if tree.body else None
        # A trailing expression's value is the run's result, unless muted with ";".
        if isinstance(tail, ast.Expr) and not code.rstrip().endswith(";"):
            tree.body.pop()
            last = ast.Expression(tail.value)
        ns = self.main.__dict__
        exec(compile(tree, filename, "exec", dont_inherit=True), ns)
        if last is not None:
            value = eval(compile(last, filename, "eval", dont_inherit=True), ns)
            if value is not None:
                ns["_"] = value
                self.result(self.bundle(value), main=True)
                if self.charts.is_figure(value):
                    sys.modules[self.charts.PYPLOT].close(value)  # shown; not again below

    def error_frame(self, exc: BaseException) -> dict[str, Any]:
        tb = exc.__traceback__
        # Trim the worker's own frames: the user sees their code only.
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(CELL_PREFIX):
            tb = tb.tb_next
        te = traceback.TracebackException(type(exc), exc, tb)
        return {
            "type": "error",
            "name": type(exc).__name__,
            "value": str(exc),
            "traceback": "".join(te.format()),
        }

    def run(self, msg: dict[str, Any]) -> None:
        code = msg.get("code")
        envs = msg.get("envs") or {}
        saved = {k: os.environ.get(k) for k in envs}
        saved_stdin = sys.stdin
        error: dict[str, Any] | None = None
        self.running = True
        try:
            os.environ.update({str(k): str(v) for k, v in envs.items()})
            if isinstance(msg.get("stdin"), str):  # else /dev/null: input() gets EOF
                sys.stdin = io.StringIO(msg["stdin"])
            self.execute(code if isinstance(code, str) else "")
            self.charts.emit_open_figures(self.emit_figure)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt included
            error = self.error_frame(exc)
        finally:
            self.running = False
            sys.stdin = saved_stdin
            for k, v in saved.items():  # envs apply to this run only
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        _flush_std()
        if error is not None:
            self.channel.send(error)
        self.channel.send({"type": "done"})

    def serve(self) -> None:
        signal.signal(signal.SIGINT, self.on_sigint)
        self.channel.send({"type": "ready", "pid": os.getpid()})
        while True:
            try:
                msg = self.channel.recv()
            except KeyboardInterrupt:
                continue
            except ValueError:
                return
            if msg is None:
                return
            if "code" not in msg:  # a late ack of an interrupted request
                continue
            try:
                self.run(msg)
            except KeyboardInterrupt:
                # Landed in our own code after the user's finished: report done anyway.
                self.channel.send({"type": "done"})


def main() -> None:
    fd = int(sys.argv[1])
    # Imports resolve from the working directory, as in a notebook, not from here.
    sys.path[0] = ""
    del sys.argv[1:]
    sys.argv[0] = ""
    os.environ.setdefault("MPLBACKEND", "Agg")
    _line_buffered()
    Worker(Channel(fd)).serve()


if __name__ == "__main__":
    main()
