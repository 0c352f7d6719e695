"""What Cove takes at create from an image definition: the Dockerfile text the
official SDK sends as `buildInfo.dockerfileContent` (from `Image...`).

The spec hook checks the Dockerfile (a 400 naming an instruction Cove does
not build) and records it for the image build (`server/snapshots.py`), and
folds in at once how the sandbox *starts*: ENTRYPOINT and CMD (combined as
Docker does: exec-form ENTRYPOINT + CMD; shell forms run under `/bin/sh
-c`), ENV (both `K=V ...` and `K V` forms) and WORKDIR (a relative one is
resolved by the agent relative to the home directory, the sandbox's
workspace). The built image's own config (from its base) fills in the rest.

A Cove create request's own `entrypoint` wins over the Dockerfile's, and its
`env` over the Dockerfile's ENV. Registered as a `SandboxService.spec_hook`.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field

from cove.images import dockerfile
from cove.images.dockerfile import command_words as _command
from cove.images.dockerfile import env_words as _env
from cove.images.dockerfile import logical_lines
from cove.server.object_storage import ContextStore
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


def parse_dockerfile(text: str) -> ImageConfig:
    image = ImageConfig()
    for number, line in logical_lines(text):
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        where = f"buildInfo.dockerfileContent line {number} ({instruction})"
        if instruction not in SUPPORTED:
            continue  # a build step: the builder's (dockerfile.parse refused unknown ones)
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


class BuildInfoSpecs:
    """Spec hook: a create's `buildInfo` checked and recorded (`builds`), or else folded.

    With builds, the image is built before the sandbox starts and its config
    applies then (`server/snapshots.py`); without (a backend that cannot run
    build steps), only how to start is taken from the Dockerfile.
    """

    def __init__(self, builds: bool, contexts: ContextStore) -> None:
        self.builds = builds
        self.contexts = contexts

    def __call__(self, spec: RecordSpec, req: CreateSandboxRequest) -> None:
        info = req.build_info
        if not info:
            return
        text = info.get("dockerfileContent")
        if not isinstance(text, str):
            raise BadRequest("field 'buildInfo.dockerfileContent' must be a string")
        hashes = self.contexts.hashes(info.get("contextHashes"))  # a 400 without a store
        stages = dockerfile.parse(text).stages  # a 400 now for what cannot be built
        spec.image = stages[-1].base
        if self.builds:
            spec.dockerfile = text
            spec.context_hashes = hashes
        elif hashes:
            raise BadRequest(
                "field 'buildInfo.contextHashes': this server's backend cannot build images"
            )
        else:
            fold_start_config(spec, text)


def fold_start_config(spec: RecordSpec, text: str) -> None:
    """How to start, from the Dockerfile alone: ENTRYPOINT/CMD (unless the request
    had an entrypoint), ENV under the request's env, WORKDIR."""
    image = parse_dockerfile(text)
    if spec.entrypoint is None:
        spec.entrypoint = image.command()
    spec.env = {**image.env, **spec.env}
    if image.workdir:
        spec.workdir = image.workdir
