"""A real S3-compatible server on loopback over TLS, for the official SDK's build contexts.

`moto_server` (moto's standalone server, pinned in requirements-test.txt)
serves S3 on a free port with a certificate from a CA made for the test, so
nothing on the host is trusted or changed. The official SDK's store client
(obstore) refuses plain HTTP and reads only the system bundle, with its
environment emptied: `trusting_sdk` runs a command in a mount namespace of
its own where `/etc/ssl/certs/ca-certificates.crt` is the host's bundle plus
the test CA (a bind mount the host never sees).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.serverproc import free_port

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MOTO = str(Path(sys.executable).parent / "moto_server")
READY = "Running on https://"  # werkzeug's line once it listens
ACCESS_KEY, SECRET_KEY, REGION = "cove-test-access", "cove-test-secret", "us-east-1"


@dataclass
class TestCA:
    ca: Path  # the CA's certificate (PEM)
    cert: Path  # the server's, for 127.0.0.1
    key: Path
    bundle: Path  # the host's bundle plus the CA: what the SDK's process trusts


def make_ca(where: Path) -> TestCA:
    """A CA and a certificate for 127.0.0.1 it signs (EC keys: made in milliseconds)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cove test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    out = TestCA(where / "ca.pem", where / "cert.pem", where / "key.pem", where / "bundle.pem")
    out.ca.write_bytes(ca.public_bytes(pem))
    out.cert.write_bytes(cert.public_bytes(pem))
    out.key.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    out.bundle.write_bytes(SYSTEM_BUNDLE.read_bytes() + b"\n" + out.ca.read_bytes())
    return out


@dataclass
class S3Server:
    url: str
    ca: TestCA
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)  # its request log

    def requests(self, method: str, key: str) -> int:
        """How many `method` requests for an object whose path holds `key` it served."""
        pattern = re.compile(rf"\b{method} /\S*{re.escape(key)}")
        return sum(1 for line in list(self.lines) if pattern.search(line))

    def assumed_roles(self) -> dict[str, dict[str, Any]]:
        """The STS sessions it handed out, by access key (moto's state API): their policies."""
        import httpx

        trust = ssl.create_default_context(cafile=str(self.ca.ca))
        data = httpx.get(f"{self.url}/moto-api/data.json", verify=trust).json()
        return {r["access_key_id"]: r for r in data.get("sts", {}).get("AssumedRole", [])}

    def client(self) -> object:
        """boto3 for what a test does to the store itself (buckets, raw objects)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            verify=str(self.ca.ca),
        )


@contextmanager
def s3_server(ca: TestCA, bucket: str, timeout: float = 60) -> Iterator[S3Server]:
    """`moto_server` on a free loopback port over TLS, with `bucket` made."""
    port = free_port()
    proc = subprocess.Popen(
        [MOTO, "-H", "127.0.0.1", "-p", str(port), "-c", str(ca.cert), "-k", str(ca.key)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = S3Server(f"https://127.0.0.1:{port}", ca, proc)
    assert proc.stdout is not None
    stdout = proc.stdout
    listening = threading.Event()

    def drain() -> None:
        for line in stdout:
            server.lines.append(line)
            if READY in line:
                listening.set()
        listening.set()  # it exited: the wait below reads why

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    try:
        if not listening.wait(timeout) or proc.poll() is not None:
            raise RuntimeError(f"moto_server did not start: {''.join(server.lines)[-2000:]}")
        server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        drainer.join(10)
        stdout.close()


def trusting_sdk(bundle: Path, argv: list[str]) -> list[str]:
    """`argv` run where the system CA bundle is `bundle` (a private mount namespace)."""
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is needed"
    script = 'mount --bind "$0" /etc/ssl/certs/ca-certificates.crt && exec "$@"'
    return [unshare, "--mount", "--propagation", "private", "sh", "-c", script, str(bundle), *argv]
