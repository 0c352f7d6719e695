"""`ray` is an optional extra: nothing but the ray backend imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cove.runtime import make_backend
from cove.settings import Settings


def test_the_sdk_server_and_local_backend_do_not_import_ray() -> None:
    code = (
        "import sys, cove.sdk, cove.cli.main, cove.server.app, cove.runtime.local\n"
        "from cove.runtime import BACKENDS\n"
        "print([m for m in sys.modules if m == 'ray' or m.startswith('ray.')])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_ray_backend_needs_an_address(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--ray-address"):
        make_backend(Settings(data_dir=tmp_path, backend="ray"))


def test_ray_settings_come_from_the_environment() -> None:
    s = Settings.from_env(
        {
            "COVE_RAY_ADDRESS": "10.1.2.3:6379",
            "COVE_RAY_PLACEMENT_TIMEOUT": "2.5",
            "COVE_RAY_RELAY_PORT": "7100",
            "COVE_RAY_SECRET": "s3",
        }
    )
    assert (s.ray_address, s.ray_placement_timeout, s.ray_relay_port, s.ray_secret) == (
        "10.1.2.3:6379",
        2.5,
        7100,
        "s3",
    )
