"""Dockerfiles: logical lines, instructions, stages.

`parse` turns the text into stages (one per FROM) of `Instruction`s, and
refuses what Cove does not build (a 400 naming the instruction and line).
Variables (`$NAME`, `${NAME}`, `${NAME:-default}`) are substituted by the
builder, which knows ARG and ENV values at each step, as Docker does.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from cove.wire.errors import BadRequest

SUPPORTED = (
    "FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER",
    "ENTRYPOINT", "CMD", "LABEL", "EXPOSE",
)  # fmt: skip


@dataclass
class Instruction:
    kind: str  # upper case, e.g. "RUN"
    args: str  # the rest of the line, continuations joined
    line: int

    @property
    def where(self) -> str:
        return f"Dockerfile line {self.line} ({self.kind})"


@dataclass
class Stage:
    base: str  # FROM's reference (unsubstituted)
    name: str | None
    line: int
    steps: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    global_args: list[Instruction]  # ARGs before the first FROM
    stages: list[Stage]


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, instruction) with `\\` continuations joined and comments dropped."""
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not parts and (not line or line.startswith("#")):
            continue
        if parts and line.startswith("#"):
            continue  # comment lines inside a continuation are skipped, as Docker does
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        out.append((start, " ".join(p.strip() for p in parts if p.strip())))
        parts = []
    if parts:
        out.append((start, " ".join(p.strip() for p in parts if p.strip())))
    return out


def command_words(args: str) -> tuple[list[str], bool]:
    """(argv, shell form?); like Docker, text that is not a JSON string array is shell form."""
    if args.startswith("["):
        with contextlib.suppress(ValueError):
            value = json.loads(args)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value, False
    return ["/bin/sh", "-c", args], True


def env_words(args: str, where: str) -> dict[str, str]:
    try:
        words = shlex.split(args)
    except ValueError as exc:
        raise BadRequest(f"{where}: {exc}") from None
    if not words:
        raise BadRequest(f"{where}: ENV needs a name and a value")
    if "=" not in words[0]:  # legacy `ENV NAME value with spaces`
        name, _, value = args.partition(" ")
        return {name: value.strip()}
    env = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise BadRequest(f"{where}: expected NAME=VALUE, got {word!r}")
        env[name] = value
    return env


def parse(text: str) -> Dockerfile:
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for number, line in logical_lines(text):
        kind, _, args = line.partition(" ")
        ins = Instruction(kind.upper(), args.strip(), number)
        if ins.kind not in SUPPORTED:
            raise BadRequest(
                f"{ins.where}: Cove does not build the {ins.kind} instruction; it builds "
                f"{', '.join(SUPPORTED)}"
            )
        if ins.kind == "FROM":
            words = ins.args.split()
            words = [w for w in words if not w.startswith("--platform=")]
            if len(words) == 3 and words[1].upper() == "AS":
                stages.append(Stage(words[0], words[2].lower(), number))
            elif len(words) == 1:
                stages.append(Stage(words[0], None, number))
            else:
                raise BadRequest(f"{ins.where}: expected FROM image [AS name]")
        elif not stages:
            if ins.kind != "ARG":
                raise BadRequest(f"{ins.where}: only ARG may come before the first FROM")
            global_args.append(ins)
        else:
            stages[-1].steps.append(ins)
    if not stages:
        raise BadRequest("the Dockerfile has no FROM instruction")
    return Dockerfile(global_args, stages)


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_VAR = re.compile(r"\\\$|\$(?:\{(" + _NAME + r")(?::([-+])([^}]*))?\}|(" + _NAME + r"))")


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Docker's variable substitution: $A, ${A}, ${A:-default}, ${A:+alt}; \\$ is a dollar."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "\\$":
            return "$"
        name = m.group(1) or m.group(4)
        value = values.get(name, "")
        if m.group(2) == "-":
            return value or m.group(3)
        if m.group(2) == "+":
            return m.group(3) if value else ""
        return value

    return _VAR.sub(one, text)


def split_flags(args: str) -> tuple[dict[str, str], str]:
    """`--from=x --chown=y rest` -> ({"from": "x", "chown": "y"}, "rest")."""
    flags: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        name, _, value = word[2:].partition("=")
        flags[name.lower()] = value
        rest = rest.lstrip()
    return flags, rest


def sources_and_dest(args: str, where: str) -> tuple[list[str], str]:
    """COPY/ADD paths: JSON array or shell words; the last one is the destination."""
    words: list[str] | None = None
    if args.startswith("["):
        with contextlib.suppress(ValueError):
            value = json.loads(args)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                words = value
    if words is None:
        try:
            words = shlex.split(args)
        except ValueError as exc:
            raise BadRequest(f"{where}: {exc}") from None
    if len(words) < 2:
        raise BadRequest(f"{where}: needs at least one source and a destination")
    return words[:-1], words[-1]
