"""A sandbox's `disk` bounds what it writes to the host (docs/disk-quota.md).

Real writes inside real sandboxes: `fallocate` and `dd` past the size fail
with ENOSPC, the sandbox and its agent keep answering (exec and a session),
the host's filesystem does not take the excess, the limit holds after
stop/start and grows with a resize, and a delete leaves no mount or loop
device behind.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove.settings import GiB
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sandbox disks need root")


def _image(sid: str) -> Path:
    (found,) = Path("/var/lib/cove").glob(f"*/{sid}/disk.ext4")
    return found


def _mounts_of(sid: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if f"/{sid}/" in line.split()[4] + "/"]


def _loops_of(sid: str) -> str:
    out = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    return "\n".join(line for line in out.splitlines() if sid in line)


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_writes_past_the_disk_fail_with_enospc_and_the_sandbox_keeps_answering(
    daytona: Any, api: httpx.Client
) -> None:
    made = api.post("/api/sandbox", json={"disk": 1})
    assert made.status_code == 200, made.text
    sid = made.json()["id"]
    try:
        sb = daytona.get(sid)
        size = sb.process.exec("df -B1 --output=size /home/user | tail -1").result
        assert 0.8 * GiB < int(size) <= GiB  # the sandbox sees its own 1 GiB disk

        out = sb.process.exec("fallocate -l 2G big 2>&1; echo rc=$?").result
        assert "No space left on device" in out and "rc=1" in out, out
        out = sb.process.exec("rm -f big; dd if=/dev/zero of=fill bs=1M count=1300 2>&1").result
        assert "No space left on device" in out, out
        # The host holds at most the disk's size for it, not the 1.3 GiB asked.
        assert _allocated(_image(sid)) <= 1.05 * GiB

        # Full: exec, a session command and file reads still work.
        assert sb.process.exec("echo alive").result.strip() == "alive"
        sb.process.create_session("full")
        run = sb.process.execute_session_command(
            "full", _session_req("echo still here; echo more >> fill; echo rc=$?")
        )
        assert run.exit_code == 0
        assert "still here" in (run.output or "") + (run.stdout or "")

        # Stop and start: the same disk, still bounded, its files kept.
        sb.stop()
        sb.start()
        out = sb.process.exec("ls; fallocate -l 1G more 2>&1; echo rc=$?").result
        assert "fill" in out and "No space left on device" in out and "rc=1" in out, out
        # Deleting files inside gives the space back to the host (discard).
        before = _allocated(_image(sid))
        sb.process.exec("rm -f fill more && sync")
        deadline = time.monotonic() + 60  # discards reach the image in the background
        while _allocated(_image(sid)) > before - 512 * 1024 * 1024:
            assert time.monotonic() < deadline, (before, _allocated(_image(sid)))
            time.sleep(0.2)
    finally:
        api.delete(f"/api/sandbox/{sid}")
    assert _mounts_of(sid) == [] and _loops_of(sid) == ""


def _session_req(command: str) -> Any:
    from daytona import SessionExecuteRequest

    return SessionExecuteRequest(command=command)


def test_a_stopped_sandboxs_disk_grows_with_resize(daytona: Any, api: httpx.Client) -> None:
    from daytona import Resources

    sid = api.post("/api/sandbox", json={"disk": 1}).json()["id"]
    try:
        sb = daytona.get(sid)
        sb.process.exec("echo kept > note")
        sb.stop()
        sb.resize(Resources(disk=2))
        sb.start()
        size = int(sb.process.exec("df -B1 --output=size /home/user | tail -1").result)
        assert 1.6 * GiB < size <= 2 * GiB
        assert sb.process.exec("cat note").result.strip() == "kept"
        out = sb.process.exec("fallocate -l 1500M big 2>&1; echo rc=$?").result
        assert "rc=0" in out, out
    finally:
        api.delete(f"/api/sandbox/{sid}")


@pytest.mark.skipif(
    os.environ.get("COVE_TEST_BACKEND") == "ray", reason="ray places by its own accounting"
)
def test_more_disk_than_the_host_has_is_a_clear_400(api: httpx.Client) -> None:
    free = os.statvfs("/var/lib/cove").f_bavail * os.statvfs("/var/lib/cove").f_frsize
    asked = min(1024, int(free // GiB) + 1)
    if asked * GiB <= free:
        pytest.skip("this host has more than 1 TiB free")
    r = api.post("/api/sandbox", json={"disk": asked, "name": f"too-big-{uuid.uuid4()}"})
    assert r.status_code == 400
    assert f"{asked} GiB asked" in r.json()["message"]
    assert "free for sandbox disks" in r.json()["message"]


def test_disks_survive_a_control_plane_sigkill(tmp_path: Path) -> None:
    """Known sandboxes keep their mounted disk; an unknown one's disk is removed."""
    proc = ServerProcess(tmp_path / "data", ["k"], env={"COVE_WARM_POOL": "0"}).start(60)
    client = httpx.Client(base_url=proc.url, headers={"Authorization": "Bearer k"}, timeout=120)
    try:
        sid = client.post("/api/sandbox", json={"disk": 1}).json()["id"]
        run = {"command": "fallocate -l 2G big"}
        assert client.post(f"/toolbox/{sid}/process/execute", json=run).json()["exitCode"] != 0
        proc.kill9()
        proc.start(60)
        again = client.post(f"/toolbox/{sid}/process/execute", json=run).json()
        assert again["exitCode"] != 0 and "No space left" in again["result"]
        assert len(_mounts_of(sid)) >= 3  # vol, home, control: reused, not doubled
    finally:
        proc.delete_all_sandboxes()
        proc.stop()
        client.close()
    assert _mounts_of(sid) == [] and _loops_of(sid) == ""


@pytest.fixture(scope="module")
def tiny_image(server: ServerProcess) -> str:
    from cove.images.store import ImageConfig, ImageStore
    from tests.images.rootfs import add_tree_image, tiny_rootfs

    store = ImageStore(server.data_dir / "images")
    tree = tiny_rootfs(store.scratch("tiny-disk"))
    (tree / "var/tmp").mkdir(parents=True)
    (tree / "var/tmp").chmod(0o1777)
    return add_tree_image(store, tree, "tiny-disk:1", ImageConfig())


def test_an_image_roots_writable_layer_counts_against_the_disk(
    api: httpx.Client, tiny_image: str
) -> None:
    made = api.post("/api/sandbox", json={"snapshot": "tiny-disk:1", "disk": 1})
    assert made.status_code == 200, made.text
    sid = made.json()["id"]
    try:
        run = {"command": "sh -c 'cat /dev/zero > /var/tmp/fill; echo rc=$?'", "timeout": 300}
        out = api.post(f"/toolbox/{sid}/process/execute", json=run).json()
        assert "No space left on device" in out["result"], out
        # It went to the image root's upper layer, on the sandbox's disk.
        (upper_fill,) = Path("/var/lib/cove").glob(f"*/{sid}/vol/upper/var/tmp/fill")
        assert 0.9 * GiB < upper_fill.stat().st_size <= GiB
        again = api.post(f"/toolbox/{sid}/process/execute", json={"command": "echo alive"})
        assert again.json()["result"].strip() == "alive"
    finally:
        api.delete(f"/api/sandbox/{sid}")
