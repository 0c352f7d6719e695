"""Which CA bundle image build steps trust: the setting, "none", or the host pip's `cert`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.runtime.local import buildstep


def test_the_setting_names_the_file(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_bytes(b"PEM")
    assert buildstep.ca_bundle(str(pem)) == b"PEM"
    assert buildstep.ca_bundle("none") is None
    with pytest.raises(ValueError, match="COVE_BUILD_CA_BUNDLE"):
        buildstep.ca_bundle(str(tmp_path / "missing.pem"))


def test_by_default_the_host_pips_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_bytes(b"HOST PEM")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\ncert = {pem}\nfind-links = /somewhere\n")
    monkeypatch.setattr(buildstep, "PIP_CONFIGS", (str(tmp_path / "absent.conf"), str(conf)))
    assert buildstep.ca_bundle("") == b"HOST PEM"
    conf.write_text("[global]\nindex-url = http://example.invalid/simple\n")
    assert buildstep.ca_bundle("") is None
