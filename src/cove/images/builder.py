"""Building an image from a Dockerfile: stages, cached layers, build sandboxes.

Each RUN, COPY and ADD makes one layer, keyed by the key of the layer below
and everything that decides its content (the command, the environment and
ARGs in scope, WORKDIR, the sources copied). A key already in the store is
reused without running anything, so rebuilding an unchanged image is
instant and a changed last step rebuilds only that step. ENV, ARG, WORKDIR,
USER, LABEL, EXPOSE, ENTRYPOINT and CMD only change the image's config.

FROM takes an earlier stage (`FROM build`, `COPY --from=build`), an image in
the store (a tag or id), or a Debian/Python reference built here (`bases`).
Anything else is pulled from a registry (`pull`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import posixpath
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from cove.images import bases
from cove.images.dockerfile import (
    Instruction,
    Stage,
    command_words,
    env_words,
    parse,
    sources_and_dest,
    split_flags,
    substitute,
)
from cove.images.pull import Puller
from cove.images.step import Log, Step, StepRunner
from cove.images.store import IMAGE_UID, Image, ImageConfig, ImageStore, content_key
from cove.wire.errors import BadRequest, CoveError, SandboxError

SRC = "/run/cove-src"  # where COPY --from sees the other stage
CONTEXT = "/run/cove-context"  # where COPY sees the build context
# Docker's COPY: a directory's contents go into the destination; a trailing
# slash or several sources make the destination a directory.
COPY_SCRIPT = r"""
set -e
dest=$1; shift
case "$dest" in */) mkdir -p "$dest" ;; esac
if [ $# -gt 1 ]; then mkdir -p "$dest"; fi
for src in "$@"; do
  if [ -d "$src" ] && [ ! -L "$src" ]; then
    mkdir -p "$dest"; cp -a "$src"/. "$dest"/
  elif [ -d "$dest" ]; then
    cp -a "$src" "$dest"/
  else
    mkdir -p "$(dirname "$dest")"; cp -a "$src" "$dest"
  fi
done
"""


class BuildFailed(SandboxError):
    """A build step failed: the message names the step; the log has its output."""


@dataclass
class _State:
    layers: list[str]  # bottom first
    config: ImageConfig
    args: dict[str, str] = field(default_factory=dict)  # ARGs in scope

    def key(self) -> str:
        return self.layers[-1] if self.layers else "scratch"

    def values(self) -> dict[str, str]:
        """What $NAME means in an instruction: ARGs, then ENV over them."""
        return {**self.args, **self.config.env}


def context_digest(context: Path | None) -> str:
    """A hash of the build context's paths, modes and contents."""
    if context is None:
        return "none"
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(context):
        dirnames.sort()
        for name in sorted(filenames) + dirnames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            h.update(f"{os.path.relpath(path, context)}\0{st.st_mode}\0".encode())
            if os.path.islink(path):
                h.update(os.readlink(path).encode())
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
    return h.hexdigest()


class Builder:
    def __init__(
        self,
        store: ImageStore,
        runner: StepRunner,
        base_cache: Path | None,
        puller: Puller | None = None,
        step_timeout: float | None = None,  # None: the Step's own default
        step_disk_bytes: int | None = None,  # None: a step may write what the host has
    ) -> None:
        self.step_timeout = step_timeout
        self.step_disk_bytes = step_disk_bytes
        self.store = store
        self.runner = runner
        self.base_cache = base_cache
        self.puller = puller

    async def build(
        self,
        text: str,
        log: Log,
        context: Path | None = None,
        build_args: dict[str, str] | None = None,
    ) -> Image:
        """The image `text` describes (its layers built or taken from the cache)."""
        dockerfile = parse(text)
        build_args = build_args or {}
        global_args: dict[str, str] = {}
        for ins in dockerfile.global_args:
            name, value = _arg(ins, global_args, build_args)
            global_args[name] = value
        ctx = context_digest(context)
        stages: dict[str, _State] = {}
        state: _State | None = None
        for index, stage in enumerate(dockerfile.stages):
            state = await self._from(stage, stages, global_args, log)
            state.args = {}
            for ins in stage.steps:
                await self._step(ins, state, stages, build_args, global_args, context, ctx, log)
            stages[str(index)] = state
            if stage.name:
                stages[stage.name] = state
            if index < len(dockerfile.stages) - 1 and state.layers:
                # An image of its own (untagged), so that its layers stay cached
                # and are evicted least recently used like any image's.
                self.store.put(list(state.layers), state.config, source=f"stage {index}")
        assert state is not None
        if not state.layers:
            raise BadRequest("the image has no files: FROM scratch needs a COPY or ADD")
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        image = self.store.put(state.layers, state.config, source=f"dockerfile:{digest}")
        log(f"image {image.id[:12]}: {len(image.layers)} layers, {image.size // (1 << 20)} MiB")
        return image

    # -- FROM ------------------------------------------------------------------------

    async def _from(
        self, stage: Stage, stages: dict[str, _State], args: dict[str, str], log: Log
    ) -> _State:
        ref = substitute(stage.base, args)
        log(f"FROM {ref}" + (f" AS {stage.name}" if stage.name else ""))
        earlier = stages.get(ref.lower())
        if earlier is not None:
            return replace(earlier, layers=list(earlier.layers), config=_copy(earlier.config))
        if ref == "scratch":
            return _State([], ImageConfig())
        image_id = self.store.resolve(ref)
        if image_id is not None:
            image = self.store.get(image_id)
            return _State(list(image.layers), _copy(image.config))
        choice = bases.choose(ref)
        if choice is None and self.puller is not None:
            image = await self.puller.pull(ref, log)
            return _State(list(image.layers), _copy(image.config))
        if choice is None:
            raise bases.ImageUnavailable(
                f"image {ref!r} cannot be had here: pulling from a registry is not available "
                f"on this server; built here: {bases.available()}"
            )
        log(f"base image: {choice.note}")
        if not self.store.has_layer(choice.key):
            scratch = self.store.scratch("base")
            tree = scratch / "root"
            await bases.build(choice, tree, log, self.base_cache)
            # Image files belong to IMAGE_UID: root in build sandboxes, nobody elsewhere.
            owner = f"{IMAGE_UID}:{IMAGE_UID}"
            await asyncio.to_thread(subprocess.run, ["chown", "-hR", owner, str(tree)], check=True)
            self.store.commit_layer(choice.key, tree)
            os.rmdir(scratch)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        if choice.python:
            env["LANG"] = "C.UTF-8"
        return _State([choice.key], ImageConfig(env=env))

    # -- one instruction -------------------------------------------------------------

    async def _step(
        self,
        ins: Instruction,
        state: _State,
        stages: dict[str, _State],
        build_args: dict[str, str],
        global_args: dict[str, str],
        context: Path | None,
        ctx: str,
        log: Log,
    ) -> None:
        config = state.config
        kind = ins.kind
        if kind == "ARG":
            name, value = _arg(ins, {**global_args, **state.values()}, build_args)
            state.args[name] = global_args.get(name, value) if "=" not in ins.args else value
            return
        # RUN, CMD and ENTRYPOINT keep their $VARs for the shell, as in Docker.
        raw = kind in ("RUN", "CMD", "ENTRYPOINT")
        args = ins.args if raw else substitute(ins.args, state.values())
        log(f"{kind} {args}")
        if kind == "ENV":
            config.env.update(env_words(args, ins.where))
        elif kind == "WORKDIR":
            # A relative WORKDIR stays relative: sandboxes resolve it under their
            # home directory (the workspace); build steps under /, as Docker does.
            config.workdir = posixpath.normpath(posixpath.join(config.workdir or "", args))
        elif kind == "USER":
            config.user = args.split()[0] if args else None
            if config.user and config.user.split(":")[0] not in ("root", "0"):
                # Docker would run later RUN steps as that user; a build namespace
                # maps one id, so say plainly what happens instead.
                log(
                    f"note: USER {config.user}: later RUN steps still run as root of the "
                    "build's namespace, and sandboxes of this image as the sandbox user "
                    "(one id is mapped per namespace; docs/images.md)"
                )
        elif kind == "LABEL":
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                config.labels[key] = value
        elif kind == "EXPOSE":
            config.exposed_ports.extend(args.split())
        elif kind == "ENTRYPOINT":
            config.entrypoint = command_words(args)[0]
            config.cmd = None  # Docker: a new ENTRYPOINT resets an inherited CMD
        elif kind == "CMD":
            config.cmd = command_words(args)[0]
        elif kind == "RUN":
            if args.startswith("--"):
                raise BadRequest(f"{ins.where}: RUN flags ({args.split()[0]}) are not supported")
            argv = command_words(args)[0]
            env = {**state.args, **config.env}
            cwd = posixpath.join("/", config.workdir or "")
            key = content_key(
                "RUN", state.key(), json.dumps(argv), json.dumps(env, sort_keys=True), cwd
            )
            await self._layer(state, key, Step([], argv, env, cwd, network=True), ins, log)
        elif kind in ("COPY", "ADD"):
            await self._copy(ins, args, state, stages, context, ctx, log)

    async def _copy(
        self,
        ins: Instruction,
        args: str,
        state: _State,
        stages: dict[str, _State],
        context: Path | None,
        ctx: str,
        log: Log,
    ) -> None:
        flags, rest = split_flags(args)
        unknown = set(flags) - {"from", "chown", "chmod", "link"}
        if unknown:
            raise BadRequest(f"{ins.where}: unsupported flag --{sorted(unknown)[0]}")
        sources, dest = sources_and_dest(rest, ins.where)
        if ins.kind == "ADD" and any("://" in s for s in sources):
            raise BadRequest(f"{ins.where}: ADD from a URL is not supported; RUN a download")
        workdir = posixpath.join("/", state.config.workdir or "")
        dest_path = posixpath.join(workdir, dest) + ("/" if dest.endswith("/") else "")
        step = Step([], [], {}, "/")
        if "from" in flags:
            src = stages.get(flags["from"].lower())
            if src is None:
                raise BadRequest(f"{ins.where}: no earlier stage named {flags['from']!r}")
            root, what = SRC, f"stage:{src.key()}"
            step.ro_images[SRC] = [str(self.store.layer_path(k)) for k in reversed(src.layers)]
        else:
            if context is None:
                raise BadRequest(
                    f"{ins.where}: this build has no context to copy from (send one with the "
                    "Cove SDK or `cove build`, or the official SDK's `Image.add_local_file` etc. "
                    "on a server with an object store)"
                )
            root, what = CONTEXT, f"context:{ctx}"
            step.ro_binds[CONTEXT] = str(context)
        inside = [posixpath.join(root, posixpath.normpath("/" + s).lstrip("/")) for s in sources]
        step.argv = ["/bin/sh", "-c", COPY_SCRIPT, "copy", dest_path, *inside]
        key = content_key(ins.kind, state.key(), what, json.dumps(sources), dest_path)
        await self._layer(state, key, step, ins, log)

    async def _layer(self, state: _State, key: str, step: Step, ins: Instruction, log: Log) -> None:
        if self.store.has_layer(key):
            log(" ---> cached layer " + key[:12])
        else:
            step.lower = [str(self.store.layer_path(k)) for k in reversed(state.layers)]
            if self.step_timeout is not None:
                step.timeout = self.step_timeout
            step.disk_bytes = self.step_disk_bytes
            scratch = self.store.scratch("layer")
            tree = scratch / "tree"
            try:
                await self.runner.run_build_step(step, lambda line: log("  " + line), tree)
            except CoveError as err:
                await asyncio.to_thread(shutil.rmtree, scratch, True)
                raise BuildFailed(f"{ins.where} failed: {err.message}") from None
            self.store.commit_layer(key, tree)
            os.rmdir(scratch)
            log(" ---> layer " + key[:12])
        state.layers.append(key)


def _copy(config: ImageConfig) -> ImageConfig:
    return ImageConfig.from_wire(json.loads(json.dumps(config.to_wire())), "image config")


def _arg(ins: Instruction, values: dict[str, str], build_args: dict[str, str]) -> tuple[str, str]:
    name, sep, default = ins.args.partition("=")
    name = name.strip()
    if not name:
        raise BadRequest(f"{ins.where}: ARG needs a name")
    if name in build_args:
        return name, build_args[name]
    return name, substitute(default, values) if sep else values.get(name, "")
