"""What Cove takes from an image definition: the Dockerfile text the official
SDK sends as `buildInfo.dockerfileContent` (from `Image.base(...)...`).

Cove runs every sandbox on the host's own root filesystem and builds no
images, so it honours only the instructions that describe how to *start*:
ENTRYPOINT and CMD (combined as Docker does: exec-form ENTRYPOINT + CMD;
shell forms run under `/bin/sh -c`), ENV (both `K=V ...` and `K V` forms; no
`$VAR` expansion) and WORKDIR (relative ones join the previous WORKDIR; the
agent resolves it inside the sandbox, relative to the home directory). FROM
is accepted and recorded but the image is not pulled. Anything else is a 400
that says so, rather than a sandbox that silently lacks what the image had.

A Cove create request's own `entrypoint` wins over the Dockerfile's, and its
`env` over the Dockerfile's ENV. Registered as a `SandboxService.spec_hook`.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import shlex
from dataclasses import dataclass, field

from cove.server.records import RecordSpec
from cove.wire.errors import BadRequest
from cove.wire.protocol import CreateSandboxRequest

SUPPORTED = ("FROM", "ENTRYPOINT", "CMD", "ENV", "WORKDIR")


@dataclass
class ImageConfig:
    base: str | None = None
    entrypoint: list[str] | None = None
    entrypoint_shell_form: bool = False
    cmd: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None

    def command(self) -> list[str] | None:
        """What the sandbox runs at start, by Docker's ENTRYPOINT/CMD rules."""
        if self.entrypoint:
            if self.entrypoint_shell_form:
                return self.entrypoint  # Docker ignores CMD then
            return self.entrypoint + (self.cmd or [])
        return self.cmd or None


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


def _command(args: str) -> tuple[list[str], bool]:
    """(argv, shell form?); like Docker, text that is not a JSON string array is shell form."""
    if args.startswith("["):
        with contextlib.suppress(ValueError):
            value = json.loads(args)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value, False
    return ["/bin/sh", "-c", args], True


def _env(args: str, where: str) -> dict[str, str]:
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


def parse_dockerfile(text: str) -> ImageConfig:
    image = ImageConfig()
    for number, line in logical_lines(text):
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        where = f"buildInfo.dockerfileContent line {number} ({instruction})"
        if instruction not in SUPPORTED:
            raise BadRequest(
                f"{where}: images are not supported yet: Cove builds no images, it only "
                f"honours {', '.join(SUPPORTED)} (FROM is recorded, not pulled)"
            )
        if instruction == "FROM":
            image.base = args.split()[0] if args else None
        elif instruction == "ENTRYPOINT":
            image.entrypoint, image.entrypoint_shell_form = _command(args)
            image.cmd = None  # Docker: a new ENTRYPOINT resets an inherited CMD
        elif instruction == "CMD":
            image.cmd = _command(args)[0]
        elif instruction == "ENV":
            image.env.update(_env(args, where))
        elif instruction == "WORKDIR":
            words = shlex.split(args) if args else []
            if len(words) != 1:
                raise BadRequest(f"{where}: WORKDIR takes one path")
            image.workdir = posixpath.normpath(posixpath.join(image.workdir or "", words[0]))
    return image


def apply_build_info(spec: RecordSpec, req: CreateSandboxRequest) -> None:
    """Spec hook: fold an SDK image definition into a new sandbox's spec."""
    info = req.build_info
    if not info:
        return
    text = info.get("dockerfileContent")
    if not isinstance(text, str):
        raise BadRequest("field 'buildInfo.dockerfileContent' must be a string")
    if info.get("contextHashes"):
        raise BadRequest(
            "field 'buildInfo.contextHashes': images are not supported yet (no build context)"
        )
    image = parse_dockerfile(text)
    if req.entrypoint is None:
        spec.entrypoint = image.command()
    spec.env = {**image.env, **spec.env}
    if image.workdir:
        spec.workdir = image.workdir
    if image.base:
        spec.image = image.base
