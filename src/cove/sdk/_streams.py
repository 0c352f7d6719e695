"""WebSocket stream protocols, without I/O: both faces feed frames in.

`LogDemux` splits a followed log stream (wire page §4.3: 3-byte markers switch
between stdout and stderr, and may be split across frames). `InterpreterRun`
reads the interpreter's JSON frames (§5) into an `ExecutionResult`, and
`interpreter_outcome` decides what a close code means.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from cove.sdk.errors import CodeTimeout
from cove.sdk.models import ExecutionError, ExecutionResult, OutputMessage, RichResult
from cove.wire.errors import CoveError

STDOUT_MARK = b"\x01\x01\x01"
STDERR_MARK = b"\x02\x02\x02"
NORMAL_CLOSES = (None, 1000, 1005)
INTERPRETER_TIMEOUT_CLOSE = 4008


class LogDemux:
    """Bytes in, (channel, text) chunks out; `channel` is "stdout" or "stderr"."""

    def __init__(self, offset: int = 0) -> None:
        # Bytes of the combined output seen so far: where a resumed follow
        # (`offset=`) picks up. The agent's escaping keeps payload lengths.
        self.position = offset
        # Daytona's client drops bytes before the first marker; Cove's agent
        # always starts with one, so treating them as stdout loses nothing.
        self.channel = "stdout"
        self._held = b""
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")
        }

    def feed(self, data: bytes | str) -> list[tuple[str, str]]:
        if isinstance(data, str):
            data = data.encode()
        data = self._held + data
        self._held = b""
        out: list[tuple[str, str]] = []
        start = 0
        while True:
            cuts = [
                i for i in (data.find(STDOUT_MARK, start), data.find(STDERR_MARK, start)) if i >= 0
            ]
            if not cuts:
                break
            cut = min(cuts)
            self._emit(out, data[start:cut])
            self.channel = "stdout" if data[cut] == 1 else "stderr"
            start = cut + 3
        rest = data[start:]
        # A marker may be split across frames: hold back a tail that could start one.
        keep = 0
        for n in (2, 1):
            if len(rest) >= n and rest[-n:] in (STDOUT_MARK[:n], STDERR_MARK[:n]):
                keep = n
                break
        self._held = rest[len(rest) - keep :] if keep else b""
        self._emit(out, rest[: len(rest) - keep])
        return out

    def flush(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        self._emit(out, self._held)
        self._held = b""
        for name, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                out.append((name, tail))
        return out

    def _emit(self, out: list[tuple[str, str]], chunk: bytes) -> None:
        self.position += len(chunk)
        if chunk:
            text = self._decoders[self.channel].decode(chunk)
            if text:
                out.append((self.channel, text))


def log_close_error(code: int | None, reason: str, what: str) -> CoveError | None:
    if code in NORMAL_CLOSES:
        return None
    return CoveError(
        f"{what} failed: {reason or 'WebSocket closed unexpectedly'} (close code {code})"
    )


class InterpreterRun:
    """Interpreter frames in, an `ExecutionResult` and callback events out."""

    def __init__(self) -> None:
        self.result = ExecutionResult()

    def feed(self, frame: str | bytes) -> tuple[str, Any] | None:
        try:
            msg = json.loads(frame)
        except ValueError:
            raise CoveError(
                f"run_code: the server sent a non-JSON frame: {frame[:200]!r}"
            ) from None
        if not isinstance(msg, dict):
            return None
        kind = msg.get("type")
        if kind in ("stdout", "stderr"):
            text = str(msg.get("text", ""))
            if kind == "stdout":
                self.result.stdout += text
            else:
                self.result.stderr += text
            return kind, OutputMessage(text)
        if kind == "error":
            err = ExecutionError(
                name=str(msg.get("name", "")),
                value=str(msg.get("value", "")),
                traceback=str(msg.get("traceback", "")),
            )
            self.result.error = err
            return "error", err
        if kind == "result":
            data = msg.get("data")
            rich = RichResult(
                data=data if isinstance(data, dict) else {},
                is_main_result=bool(msg.get("isMainResult", msg.get("is_main_result", False))),
            )
            self.result.results.append(rich)
            return "result", rich
        if kind == "control" and msg.get("text") in ("interrupted", "timeout"):
            self.result.interrupted = True
        return None

    def outcome(self, code: int | None, reason: str) -> ExecutionResult:
        """The result after the socket closed with `code`, or the error it means."""
        if code in NORMAL_CLOSES:
            return self.result
        if code == INTERPRETER_TIMEOUT_CLOSE:
            self.result.interrupted = True
            raise CodeTimeout(
                "run_code failed: execution timed out: it exceeded the configured timeout "
                "and was interrupted (the context and its variables are kept)",
                self.result,
            )
        raise CoveError(
            f"run_code failed: {reason or 'WebSocket connection closed unexpectedly'} "
            f"(close code {code})"
        )
