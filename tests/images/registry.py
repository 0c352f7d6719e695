"""A real OCI registry on loopback for tests (Debian's docker-registry), and test images
pushed to it with umoci + skopeo. Nothing here reaches past 127.0.0.1."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.serverproc import free_port


@contextmanager
def loopback_registry(root: Path) -> Iterator[str]:
    """A docker-registry serving from `root`; yields its `127.0.0.1:PORT`."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed: run `make image-test-deps`")
    port = free_port()
    config = root / "config.yml"
    (root / "storage").mkdir(parents=True, exist_ok=True)
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("docker-registry did not start") from None
                # Connection refused comes back at once: wait on the process a little.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def push_tree(tree: Path, work: Path, ref: str, env: dict[str, str], cmd: list[str]) -> None:
    """`tree` as a one-layer OCI image with that env and cmd, pushed to `ref` (a loopback one)."""
    layout = work / "layout"
    bundle = work / "bundle"

    def run(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True)

    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:t")
    run("umoci", "unpack", "--image", f"{layout}:t", str(bundle))
    shutil.copytree(tree, bundle / "rootfs", symlinks=True, dirs_exist_ok=True)
    run("umoci", "repack", "--image", f"{layout}:t", str(bundle))
    config = ["umoci", "config", "--image", f"{layout}:t"]
    for name, value in env.items():
        config += ["--config.env", f"{name}={value}"]
    for arg in cmd:
        config += ["--config.cmd", arg]
    run(*config)
    run(
        "skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:t", f"docker://{ref}"
    )


def push_sharing_a_base(
    base: Path, work: Path, variants: dict[str, tuple[dict[str, str], list[str]]]
) -> None:
    """One base layer (`base`'s tree) under each variant's own layer, pushed to each ref.

    A variant is ({path: text} written, [paths] removed from the base, a whiteout):
    the base layer is the very same blob in every image, as with a shared FROM.
    """
    layout = work / "layout"

    def run(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True)

    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:base")
    bundle = work / "base-bundle"
    run("umoci", "unpack", "--image", f"{layout}:base", str(bundle))
    shutil.copytree(base, bundle / "rootfs", symlinks=True, dirs_exist_ok=True)
    run("umoci", "repack", "--image", f"{layout}:base", str(bundle))
    run("umoci", "config", "--image", f"{layout}:base", "--config.env", "PATH=/usr/bin:/bin")
    for i, (ref, (written, removed)) in enumerate(variants.items()):
        bundle = work / f"bundle-{i}"
        run("umoci", "unpack", "--image", f"{layout}:base", str(bundle))
        for path, text in written.items():
            target = bundle / "rootfs" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for path in removed:
            (bundle / "rootfs" / path).unlink()
        run("umoci", "repack", "--image", f"{layout}:v{i}", str(bundle))
        dest = f"docker://{ref}"
        run("skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:v{i}", dest)


@contextmanager
def pushed_tiny_image(name: str) -> Iterator[str]:
    """A tiny image (`tests.images.rootfs`, plus /etc/pulled and PULLED=yes) pushed to a
    loopback registry of its own as `<registry>/test/<name>`: its reference."""
    from tests.images.rootfs import tiny_rootfs

    with tempfile.TemporaryDirectory(prefix="cove-registry-") as tmp:
        root = Path(tmp)
        with loopback_registry(root / "registry") as address:
            ref = f"{address}/test/{name}"
            tree = tiny_rootfs(root / "tree")
            (tree / "etc/pulled").write_text("from the registry\n")
            push_tree(tree, root / "push", ref, {"PULLED": "yes", "PATH": "/usr/bin:/bin"}, ["sh"])
            yield ref
