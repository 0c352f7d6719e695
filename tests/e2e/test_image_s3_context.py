"""The official SDK's build contexts through an S3-compatible store, end to end.

A real S3 server (moto, on loopback over TLS with a CA made for the test),
a Cove server pointed at it (COVE_OBJECT_STORAGE_*), and the unmodified
official SDK in a child process that trusts the test CA (`tests.images.s3`):
`add_local_file`, `add_local_dir` and `from_dockerfile` with COPY, through
`daytona.create` and `daytona.snapshot.create`, read back inside sandboxes.
The base is `tiny_rootfs` tagged in the server's store: no Debian base is
built (`Image.debian_slim` itself runs apt-get and pip: it needs the internet).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cove.images.store import ImageConfig, ImageStore
from cove.server.auth import key_hash
from cove.server.object_storage import organization_id
from tests.images.rootfs import add_tree_image, tiny_rootfs
from tests.images.s3 import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    S3Server,
    make_ca,
    s3_server,
    trusting_sdk,
)
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.timeout(600)
BUCKET = "cove-contexts"
BASE = "s3ctx-tiny:1"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Setup:
    server: ServerProcess
    s3: S3Server
    files: Path  # the local files the SDK builds from
    env: dict[str, str]  # the server's COVE_OBJECT_STORAGE_* settings

    def sdk(self, key: str, **spec: Any) -> dict[str, Any]:
        """One official-SDK build in a child that trusts the test CA; its JSON answer."""
        spec = {"api_url": self.server.api_url, "key": key, "base": BASE, **spec}
        argv = [sys.executable, "-m", "tests.images.s3sdk", json.dumps(spec)]
        done = subprocess.run(
            trusting_sdk(self.s3.ca.bundle, argv),
            capture_output=True, text=True, cwd=ROOT, timeout=540,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return answer

    def client(self, key: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=120)

    def uploads(self, key: str) -> list[str]:
        """The object keys under `key`'s organizationId."""
        prefix = organization_id(key_hash(key)) + "/"
        listed = self.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)  # type: ignore[attr-defined]
        return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    with tempfile.TemporaryDirectory(prefix="cove-s3ctx-") as tmp:
        work = Path(tmp)
        ca = make_ca(work)
        with s3_server(ca, BUCKET) as s3:
            env = {
                "COVE_OBJECT_STORAGE_URL": s3.url,
                "COVE_OBJECT_STORAGE_BUCKET": BUCKET,
                "COVE_OBJECT_STORAGE_REGION": REGION,
                "COVE_OBJECT_STORAGE_ACCESS_KEY": ACCESS_KEY,
                "COVE_OBJECT_STORAGE_SECRET_KEY": SECRET_KEY,
                "COVE_OBJECT_STORAGE_CA_BUNDLE": str(ca.ca),
                "COVE_OBJECT_STORAGE_SHARE_KEY": "1",
                "COVE_WARM_POOL": "0",
            }
            server = serve(work / "data", ["s3ctx-alice", "s3ctx-bob"], env)
            try:
                files = work / "files"
                (files / "tree/sub").mkdir(parents=True)
                (files / "hello.txt").write_text("hello from a local file\n")
                (files / "tree/a.txt").write_text("a in a dir\n")
                (files / "tree/sub/b.txt").write_text("b deeper\n")
                yield Setup(server, s3, files, env)
            finally:
                server.delete_all_sandboxes()
                server.stop()


def serve(data: Path, keys: list[str], env: dict[str, str]) -> ServerProcess:
    """A server with the store's settings and the tiny base tagged in its image store."""
    server = ServerProcess(data, keys, env=env).start()
    store = ImageStore(server.data_dir / "images")
    add_tree_image(store, tiny_rootfs(store.scratch("s3ctx")), BASE, ImageConfig())
    return server


def read(client: httpx.Client, sid: str, command: str) -> str:
    r = client.post(f"/toolbox/{sid}/process/execute", json={"command": command})
    assert r.status_code == 200, r.text
    out: str = r.json()["result"]
    return out


def test_push_access_is_the_sdks_model_with_a_prefix_per_key(setup: Setup) -> None:
    with setup.client("s3ctx-alice") as alice, setup.client("s3ctx-bob") as bob:
        a = alice.get("/api/object-storage/push-access").json()
        b = bob.get("/api/object-storage/push-access").json()
    assert a["storageUrl"] == setup.s3.url and a["bucket"] == BUCKET, a
    assert (a["accessKey"], a["secret"], a["region"]) == (ACCESS_KEY, SECRET_KEY, REGION)
    assert a["organizationId"] != b["organizationId"]
    # Derived from the key's id, and neither the key nor its stored hash.
    assert a["organizationId"] == organization_id(key_hash("s3ctx-alice"))
    assert a["organizationId"] not in ("s3ctx-alice", key_hash("s3ctx-alice"))


def test_push_access_hands_out_no_key_unless_the_self_hoster_opts_in(
    setup: Setup, tmp_path: Path
) -> None:
    env = {k: v for k, v in setup.env.items() if k != "COVE_OBJECT_STORAGE_SHARE_KEY"}
    server = ServerProcess(tmp_path / "data", ["s3ctx-carol"], env=env).start()
    try:
        r = httpx.get(
            f"{server.api_url}/object-storage/push-access",
            headers={"Authorization": "Bearer s3ctx-carol"},
        )
    finally:
        server.stop()
    assert r.status_code == 501, r.text
    assert "COVE_OBJECT_STORAGE_SHARE_KEY=1" in r.text and SECRET_KEY not in r.text


def test_with_a_role_push_access_hands_out_scoped_short_lived_credentials(
    setup: Setup, tmp_path: Path
) -> None:
    # A store of its own: moto's state API (which shows the session policy) fails
    # once a multipart upload is in it, so the policy is read before any upload.
    with s3_server(setup.s3.ca, BUCKET) as s3:
        env = {k: v for k, v in setup.env.items() if k != "COVE_OBJECT_STORAGE_SHARE_KEY"}
        env["COVE_OBJECT_STORAGE_URL"] = s3.url
        env["COVE_OBJECT_STORAGE_ROLE_ARN"] = "arn:aws:iam::123456789012:role/cove-contexts"
        server = serve(tmp_path / "data", ["s3ctx-dave"], env)
        auth = {"Authorization": "Bearer s3ctx-dave"}
        try:
            with httpx.Client(base_url=server.url, headers=auth, timeout=60) as dave:
                access = dave.get("/api/object-storage/push-access").json()
                role = s3.assumed_roles()[access["accessKey"]]
                # The unmodified SDK uploads with them, and the build reads them back.
                source = setup.files / "hello.txt"
                made = Setup(server, s3, setup.files, env).sdk(
                    "s3ctx-dave", action="create", files=[[str(source), "/opt/hello.txt"]]
                )
                assert "error" not in made, made
                try:
                    out = read(dave, made["id"], "cat /opt/hello.txt")
                finally:
                    dave.delete(f"/api/sandbox/{made['id']}")
        finally:
            server.delete_all_sandboxes()
            server.stop()
    assert out == "hello from a local file\n", out
    assert access["sessionToken"] and access["accessKey"] != ACCESS_KEY, access
    assert SECRET_KEY not in json.dumps(access)
    org = organization_id(key_hash("s3ctx-dave"))
    assert access["organizationId"] == org
    # What the store was asked to allow them: objects under this key's prefix only.
    statements = json.loads(role["policy"])["Statement"]
    objects = [st for st in statements if "s3:PutObject" in st["Action"]]
    assert [st["Resource"] for st in objects] == [[f"arn:aws:s3:::{BUCKET}/{org}/*"]], statements
    assert all(st["Action"] == ["s3:ListBucket"] for st in statements if st not in objects)


def test_local_file_and_dir_reach_the_sandbox(setup: Setup) -> None:
    f = setup.files
    spec = {
        "action": "create",
        "files": [[str(f / "hello.txt"), "/opt/ctx/hello.txt"]],
        "dirs": [[str(f / "tree"), "/opt/ctx/tree"]],
    }
    made = setup.sdk("s3ctx-alice", **spec)
    assert "error" not in made, made
    with setup.client("s3ctx-alice") as alice:
        try:
            out = read(alice, made["id"], "cat /opt/ctx/hello.txt /opt/ctx/tree/a.txt "
                       "/opt/ctx/tree/sub/b.txt")  # fmt: skip
        finally:
            alice.delete(f"/api/sandbox/{made['id']}")
    assert out.splitlines() == ["hello from a local file", "a in a dir", "b deeper"], out
    uploads = setup.uploads("s3ctx-alice")
    assert len(uploads) == 2 and all(u.endswith("/context.tar") for u in uploads), uploads

    # The same build again: the SDK's HEAD finds both tars, nothing is uploaded twice.
    puts = {u: setup.s3.requests("PUT", u) + setup.s3.requests("POST", u) for u in uploads}
    heads = {u: setup.s3.requests("HEAD", u) for u in uploads}
    again = setup.sdk("s3ctx-alice", **spec)
    assert "error" not in again, again
    with setup.client("s3ctx-alice") as alice:
        alice.delete(f"/api/sandbox/{again['id']}")
    for u in uploads:
        assert setup.s3.requests("PUT", u) + setup.s3.requests("POST", u) == puts[u], u
        assert setup.s3.requests("HEAD", u) > heads[u], u


def test_a_dockerfile_with_copy_through_a_snapshot(setup: Setup, tmp_path: Path) -> None:
    (tmp_path / "app.txt").write_text("the app\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/settings.ini").write_text("[main]\nx = 1\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {BASE}\nCOPY app.txt /srv/app.txt\nCOPY conf /srv/conf\n")
    snap = setup.sdk(
        "s3ctx-alice", action="snapshot", name="s3ctx-snap", dockerfile=str(dockerfile)
    )
    assert "error" not in snap and "active" in snap["state"].lower(), snap
    with setup.client("s3ctx-alice") as alice:
        made = alice.post("/api/sandbox", json={"snapshot": "s3ctx-snap"})
        assert made.status_code == 200, made.text
        sid = made.json()["id"]
        try:
            out = read(alice, sid, "cat /srv/app.txt /srv/conf/settings.ini")
        finally:
            alice.delete(f"/api/sandbox/{sid}")
    assert out.splitlines() == ["the app", "[main]", "x = 1"], out


def test_another_key_cannot_build_from_the_first_keys_upload(setup: Setup) -> None:
    made = setup.sdk(
        "s3ctx-alice", action="create", files=[[str(setup.files / "hello.txt"), "/h.txt"]]
    )
    assert "error" not in made, made
    with setup.client("s3ctx-alice") as alice:
        alice.delete(f"/api/sandbox/{made['id']}")
    digest = setup.uploads("s3ctx-alice")[0].split("/")[1]
    source = str(setup.files / "hello.txt").lstrip("/")  # its path in the SDK's tar
    info = {"dockerfileContent": f"FROM {BASE}\nCOPY {source} /x\n", "contextHashes": [digest]}
    with setup.client("s3ctx-bob") as bob, setup.client("s3ctx-alice") as alice:
        for path, body in (
            ("/api/sandbox", {"buildInfo": info}),
            ("/api/snapshots", {"name": "bob-steals", "buildInfo": info}),
        ):
            r = bob.post(path, json=body)
            assert r.status_code == 400, r.text
            assert f"no build context {digest} was uploaded with this API key" in r.text
        # The same request with the key that uploaded it is accepted.
        ok = alice.post("/api/snapshots", json={"name": "alice-own", "buildInfo": info})
        assert ok.status_code == 200, ok.text


def test_a_tar_that_leaves_the_context_fails_the_build_naming_it(setup: Setup) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"escaped\n"
        member = tarfile.TarInfo("../../escaped.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    digest = "0123456789abcdef0123456789abcdef"
    key = f"{organization_id(key_hash('s3ctx-alice'))}/{digest}/context.tar"
    setup.s3.client().put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())  # type: ignore[attr-defined]
    info = {"dockerfileContent": f"FROM {BASE}\nCOPY escaped.txt /e\n", "contextHashes": [digest]}
    with setup.client("s3ctx-alice") as alice:
        made = alice.post("/api/snapshots", json={"name": "s3ctx-escape", "buildInfo": info})
        assert made.status_code == 200, made.text
        sid = made.json()["id"]
        log = alice.get(f"/api/snapshots/{sid}/build-logs", params={"follow": "true"}).text
        snap = alice.get(f"/api/snapshots/{sid}").json()
    assert snap["state"] == "build_failed", snap
    assert "the build context is not a usable tar" in snap["errorReason"], snap
    assert "not a usable tar" in log, log
    assert not (setup.server.data_dir / "escaped.txt").exists()


def test_contexts_without_a_store_are_a_clear_error(daytona: Any, api: httpx.Client) -> None:
    """The shared server has no store: the SDK hears why, and what to use instead."""
    from daytona import CreateSandboxFromImageParams, DaytonaError, Image

    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        image = Image.base("python:3.11-slim").add_local_file(f.name, "/x.txt")
        with pytest.raises(DaytonaError) as caught:
            daytona.create(CreateSandboxFromImageParams(image=image))
    assert "COVE_OBJECT_STORAGE_URL" in str(caught.value), caught.value
    assert "cove build" in str(caught.value)
    access = api.get("/api/object-storage/push-access")
    assert access.status_code == 501 and "cove build" in access.text, access.text
    info = {"dockerfileContent": "FROM python:3.11-slim\n", "contextHashes": ["0" * 32]}
    r = api.post("/api/sandbox", json={"buildInfo": info})
    assert r.status_code == 400 and "COVE_OBJECT_STORAGE_URL" in r.text, r.text
    bad = api.post(
        "/api/snapshots", json={"name": "x", "buildInfo": {**info, "contextHashes": "a"}}
    )
    assert bad.status_code == 400 and "md5" in bad.text, bad.text
