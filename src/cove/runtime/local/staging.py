"""Making host directories visible to a sandbox's unprivileged uid.

bwrap resolves every bind source by path as the sandbox's uid (even
`--bind-fd` goes through realpath), so each ancestor must be traversable by
"others". The data directory, the source tree and the runtime environment
may sit under /root (embedded mode, CI clones); this module mirrors what the
sandbox needs into a traversable root, keyed by content so that a running
sandbox never sees its files change underneath it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path


def traversable(path: Path) -> bool:
    """Whether any uid can reach `path` (every ancestor has o+x)."""
    p = path.resolve()
    for part in [p, *p.parents]:
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def make_root(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    if not traversable(path):
        raise RuntimeError(
            f"sandbox root {path} is not reachable by unprivileged users; "
            "set COVE_SANDBOX_ROOT to a directory whose parents are world-traversable"
        )
    return path


def _tree_digest(src: Path, suffixes: tuple[str, ...] | None) -> str:
    h = hashlib.sha256(str(src.resolve()).encode())
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if suffixes and not name.endswith(suffixes):
                continue
            st = os.stat(os.path.join(dirpath, name))
            h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def stage_package(package_dir: Path, root: Path) -> Path:
    """A readable copy of a Python package's .py files; returns the dir to put on sys.path."""
    digest = _tree_digest(package_dir, (".py",))
    target = root / f"lib-{digest}"
    if not (target / package_dir.name).is_dir():
        tmp = root / f".lib-{digest}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(
            package_dir,
            tmp / package_dir.name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        _open_up(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another server staged the same content first
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def stage_tree(src: Path, root: Path, name: str) -> Path:
    """`src` itself when sandboxes can reach it, else a hard-linked mirror of it."""
    if traversable(src):
        return src
    marker = src / ".installed"
    stamp = marker.stat().st_mtime_ns if marker.exists() else src.stat().st_mtime_ns
    digest = hashlib.sha256(f"{src.resolve()}:{stamp}".encode()).hexdigest()[:16]
    target = root / f"{name}-{digest}"
    if not target.is_dir():
        tmp = root / f".{name}-{digest}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp, copy_function=_link_or_copy, symlinks=True)
        _open_up(tmp)
        try:
            tmp.rename(target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _open_up(path: Path) -> None:
    """Directories 0755; files keep their bits plus read for others."""
    for dirpath, _, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                mode = os.stat(full).st_mode
                os.chmod(full, stat.S_IMODE(mode) | stat.S_IROTH)


def precompile(lib_dir: Path, python: str) -> None:
    """Bytecode for the staged package, made by the agent's own interpreter.

    The sandbox mounts the package read-only and the agent runs with
    PYTHONDONTWRITEBYTECODE, so without this every agent start compiled every
    cove module from source again (about half of its start time).
    """
    if not os.path.exists(python):
        return
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", str(lib_dir)],
        check=False,
        stdout=subprocess.DEVNULL,
    )
    for dirpath, dirnames, filenames in os.walk(lib_dir):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
