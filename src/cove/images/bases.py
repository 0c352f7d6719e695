"""Base images built here from Debian's packages (mmdebstrap), as stand-ins for
`debian:*` and `python:X.Y-slim*` references.

Each Debian suite gives one Python minor version (bookworm 3.11, trixie
3.13), so a `python:` tag maps to the suite with the same minor version,
whatever suite its suffix names (the official SDK's `debian_slim("3.13")`
writes `python:3.13.x-slim-bookworm`): the build log says which base was
used. A version no suite has is a clear error listing what is available.

A `python:` stand-in has what the official image has: `python`, `python3`,
`pip`, `venv`, and a pip that installs system-wide (Debian's "externally
managed" marker is removed, as the official image has none).

mmdebstrap runs on the host as root: what it runs are the maintainer scripts
of Debian's signed packages, not user input (user `RUN` steps run in build
sandboxes). The result is owned by `IMAGE_UID` (see `store`), keyed by
what went into it, and kept in an optional cache shared by servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cove.images.store import content_key
from cove.wire.errors import BadRequest, SandboxError

# suite -> the Python minor version its python3 package is
SUITES = {"bookworm": "3.11", "trixie": "3.13"}
SUITE_NUMBERS = {"12": "bookworm", "13": "trixie"}
DEFAULT_SUITE = "trixie"  # `debian:latest` / `debian:stable` today
BASE_VERSION = "1"  # bump to rebuild every base (what goes into one changed)
PYTHON_PACKAGES = ("python3", "python3-pip", "python3-venv", "python-is-python3")
COMMON_PACKAGES = ("ca-certificates",)

# Build sandboxes map their root to one host uid, so apt cannot drop to `_apt`.
APT_CONF = b'APT::Sandbox::User "root";\n'

Log = Callable[[str], None]


class ImageUnavailable(BadRequest):
    """The reference names an image this server cannot have (no stand-in, no registry)."""


@dataclass(frozen=True)
class BaseChoice:
    suite: str
    python: bool
    note: str  # for the build log: what the reference was mapped to

    @property
    def packages(self) -> tuple[str, ...]:
        return COMMON_PACKAGES + (PYTHON_PACKAGES if self.python else ())

    @property
    def key(self) -> str:
        return content_key("debian-base", BASE_VERSION, self.suite, *self.packages)


def available() -> str:
    pythons = ", ".join(f"python:{v}-slim ({s})" for s, v in SUITES.items())
    debians = ", ".join(f"debian:{s}" for s in SUITES)
    return f"{pythons}; {debians}"


_HUB = r"^(?:docker\.io/)?(?:library/)?"
_PYTHON_TAG = re.compile(_HUB + r"python:(\d+)\.(\d+)(?:\.\d+)?(?P<rest>.*)$")
_DEBIAN = re.compile(_HUB + r"debian(?::(?P<tag>.+))?$")
_HERE = "built here from Debian packages"


def choose(ref: str) -> BaseChoice | None:
    """The local stand-in for `ref`, None if it is not a Debian or Python reference.

    BadRequest when it is one but no suite here has that version.
    """
    m = _PYTHON_TAG.match(ref)
    if m:
        minor = f"{m.group(1)}.{m.group(2)}"
        rest = m.group("rest")
        if rest and not re.match(r"^(-slim)?(-(bookworm|trixie|bullseye|buster))?$", rest):
            raise ImageUnavailable(
                f"image {ref!r}: only the Debian slim variants are built here; available: "
                f"{available()}"
            )
        for suite, version in SUITES.items():
            if version == minor:
                return BaseChoice(
                    suite,
                    True,
                    f"{ref} -> Debian {suite} with Python {minor} ({_HERE})",
                )
        raise ImageUnavailable(
            f"image {ref!r}: no base with Python {minor} can be built here; available: "
            f"{available()}"
        )
    m = _DEBIAN.match(ref)
    if m:
        tag = (m.group("tag") or "latest").split("-")[0]
        suite = SUITE_NUMBERS.get(tag.split(".")[0], tag)
        if tag in ("latest", "stable"):
            suite = DEFAULT_SUITE
        if suite not in SUITES:
            raise ImageUnavailable(
                f"image {ref!r}: Debian {tag} is not available; available: {available()}"
            )
        return BaseChoice(suite, False, f"{ref} -> Debian {suite} ({_HERE})")
    return None


async def build(choice: BaseChoice, dest: Path, log: Log, cache: Path | None) -> None:
    """Make the base's tree at `dest` (which must not exist), from `cache` if it has it."""
    cached = cache / choice.key if cache else None
    if cached is not None and cached.is_dir():
        log(f"base {choice.suite}: from the base cache")
        await _run(["cp", "-a", "--reflink=auto", str(cached), str(dest)], log)
        return
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise SandboxError(
            "building Debian base images needs mmdebstrap: apt-get install mmdebstrap"
        )
    log(f"base {choice.suite}: mmdebstrap {', '.join(choice.packages)}")
    tmp = dest.with_name(dest.name + ".mm")
    hooks = [
        f"--customize-hook=mkdir -p $1/etc/apt/apt.conf.d && "
        f"printf '{APT_CONF.decode().strip()}\\n' > $1/etc/apt/apt.conf.d/00cove-sandbox",
        # The official python images let pip install system-wide.
        "--customize-hook=rm -f $1/usr/lib/python3*/EXTERNALLY-MANAGED",
    ]
    argv = [
        mmdebstrap, "--variant=minbase", f"--include={','.join(choice.packages)}",
        "--mode=root", "--format=directory", *hooks, choice.suite, str(tmp),
    ]  # fmt: skip
    await _run(argv, log)
    tmp.rename(dest)
    if cached is not None:
        assert cache is not None
        cache.mkdir(parents=True, exist_ok=True)
        part = cache / f".{choice.key}.{os.getpid()}"
        await _run(["cp", "-a", "--reflink=auto", str(dest), str(part)], log)
        try:
            part.rename(cached)
        except OSError:
            with contextlib.suppress(OSError):
                shutil.rmtree(part)


async def _run(argv: list[str], log: Log) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    async for line in proc.stdout:
        log(line.decode(errors="replace").rstrip())
    code = await proc.wait()
    if code != 0:
        raise SandboxError(f"{os.path.basename(argv[0])} failed (exit status {code})")
