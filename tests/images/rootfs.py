"""Small root filesystems for image tests, made from the host's own files.

`tiny_rootfs` is an image with a shell and a few tools but no Python (like
a distroless or busybox image): what an image needs to get exec and no
more. It is made in a few milliseconds, so tests need no network for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cove.images.store import ImageConfig, ImageStore, content_key

# cp and dirname: what a COPY step runs in the image (`builder.COPY_SCRIPT`).
TOOLS = (
    "sh",
    "cat",
    "ls",
    "id",
    "env",
    "echo",
    "touch",
    "mkdir",
    "rm",
    "sleep",
    "pwd",
    "cp",
    "dirname",
)


def _libs(binary: str) -> set[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    libs = set()
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/"):
                libs.add(os.path.realpath(word))
                libs.add(word)
    return libs


def tiny_rootfs(dest: Path) -> Path:
    """A merged-/usr tree with dash as /bin/sh, some coreutils and their libraries."""
    for d in ("usr/bin", "usr/lib", "usr/lib64", "etc", "tmp", "root"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if not (dest / link).exists():
            (dest / link).symlink_to(target)
    needed: set[str] = set()
    for tool in TOOLS:
        path = shutil.which(tool, path="/usr/bin:/bin")
        assert path, tool
        real = os.path.realpath(path)
        shutil.copy2(real, dest / "usr/bin" / tool)
        needed |= _libs(real)
    for lib in needed:
        rel = lib.lstrip("/")
        if rel.startswith(("lib/", "lib64/")):
            rel = "usr/" + rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(os.path.realpath(lib), target)
    (dest / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc/group").write_text("root:x:0:\n")
    (dest / "etc/os-release").write_text("ID=tiny\n")
    (dest / "tmp").chmod(0o1777)
    return dest


def add_tree_image(store: ImageStore, tree: Path, name: str, config: ImageConfig) -> str:
    """`tree` (moved) as a one-layer image tagged `name`; returns the image id."""
    key = content_key("test-tree", name, str(tree))
    store.commit_layer(key, tree)
    image = store.put([key], config, source=name)
    store.tag(name, image.id)
    return image.id
