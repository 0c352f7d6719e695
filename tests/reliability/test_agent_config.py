"""The agent's config is one typed model on both sides, and a key it does not know is refused.

A runtime of another version (or a typo) that writes a key the agent lacks
must not run the sandbox with a silent default: the agent exits naming the
key, and the runtime's start error quotes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from cove.agent.config import AgentConfig
from cove.runtime.base import SandboxSpec
from cove.runtime.local import LocalBackend
from cove.runtime.local.fs import AGENT_PYTHON
from cove.wire.errors import SandboxError

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class FutureConfig(AgentConfig):
    """What a newer runtime might write: a key this agent has never heard of."""

    future_option: int = 1


def test_the_config_the_runtime_writes_is_the_one_the_agent_reads(tmp_path: Path) -> None:
    be = LocalBackend(tmp_path / "data")
    try:
        spec = SandboxSpec(id="round-trip", env={"A": "1"}, entrypoint=["sleep", "1"], workdir="w")
        written = be._agent_config(spec)
        assert AgentConfig.parse(json.loads(json.dumps(written.to_wire()))) == written
    finally:
        asyncio.run(be.close())


def test_the_agent_refuses_an_unknown_config_key(tmp_path: Path) -> None:
    if not os.path.exists(AGENT_PYTHON):
        pytest.skip(f"the agent's interpreter {AGENT_PYTHON} is not installed")
    sock = tmp_path / "agent.sock"
    config = tmp_path / "agent.json"
    wire = FutureConfig(sandbox_id="s", socket=str(sock), control_dir=str(tmp_path)).to_wire()
    config.write_text(json.dumps(wire))
    done = subprocess.run(
        [AGENT_PYTHON, "-s", "-S", "-m", "cove.agent", str(config)],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "unknown key 'futureOption'" in done.stderr
    assert not sock.exists()


class FutureBackend(LocalBackend):
    def _agent_config(self, spec: SandboxSpec) -> AgentConfig:
        base = super()._agent_config(spec)
        return FutureConfig(**vars(base))


def test_the_runtime_reports_why_the_agent_refused_its_config() -> None:
    async def scenario(be: LocalBackend) -> None:
        spec = SandboxSpec(id=f"future-{os.urandom(4).hex()}")
        handle = await be.create(spec)
        try:
            with pytest.raises(SandboxError) as caught:
                await be.start(handle, spec)
            assert "unknown key 'futureOption'" in caught.value.message
            assert not be.is_running(handle)
        finally:
            await be.destroy(handle)
            await be.close()

    with tempfile.TemporaryDirectory(prefix="cove-config-") as tmp:
        be = FutureBackend(Path(tmp))
        asyncio.run(asyncio.wait_for(scenario(be), 60))
