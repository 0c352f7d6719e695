"""Sandbox objects: their data, lifecycle calls, their `process`,
`code_interpreter`, `fs` and `git` (wire page §3), and the environment and
port helpers (`_env_calls`). `SandboxCalls` builds the control-plane
requests for both faces; `Sandbox` and `AsyncSandbox` only send them.
"""

from __future__ import annotations

import json
from typing import Any

from cove.sdk._base import Call, Endpoints, Toolbox, seg, wire_body
from cove.sdk._env_calls import EnvCalls
from cove.sdk._preview_calls import PreviewCalls
from cove.sdk._transport import AsyncTransport, SyncTransport
from cove.sdk.control import AsyncControl, ControlCalls, SyncControl
from cove.sdk.fs import AsyncFileSystem, FileSystem
from cove.sdk.git import AsyncGit, Git
from cove.sdk.interpreter import AsyncCodeInterpreter, CodeInterpreter
from cove.sdk.models import CreateSandboxParams
from cove.sdk.process import AsyncProcess, Process
from cove.sdk.snapshots import dockerfile_of
from cove.wire.errors import BadRequest, SandboxError
from cove.wire.protocol import (
    LANGUAGE_LABEL,
    CreateSandboxRequest,
    NetworkSettings,
    Node,
    NodeList,
    PortPreviewUrl,
    SandboxList,
    SignedPortPreviewUrl,
    UpdateNetworkSettings,
)
from cove.wire.protocol import Sandbox as WireSandbox
from cove.wire.protocol.ssh import SshAccess, SshAccessValidation

FAILED_STATES = ("error", "build_failed")
BUILDING_STATES = ("pending_build", "building_snapshot")


def _build_info(image: Any) -> dict[str, Any] | None:
    """What a create sends for `image`: its Dockerfile (a reference is `FROM` it)."""
    if image is None:
        return None
    text = dockerfile_of(image)
    if text is None:
        if not isinstance(image, str) or not image:
            raise BadRequest(f"image= must be a reference or an Image builder, not {image!r}")
        text = f"FROM {image}\n"
    return {"dockerfileContent": text}


def _sandbox(data: Any) -> WireSandbox:
    return WireSandbox.from_wire(data, "sandbox")


class SandboxCalls:
    def __init__(self, endpoints: Endpoints) -> None:
        self.ep = endpoints

    def create(self, p: CreateSandboxParams) -> Call[WireSandbox]:
        labels = dict(p.labels or {})
        labels[LANGUAGE_LABEL] = p.language or labels.get(LANGUAGE_LABEL) or "python"
        body = CreateSandboxRequest(
            name=p.name, env=dict(p.env_vars or {}), labels=labels, cpu=p.cpu, memory=p.memory,
            disk=p.disk, public=p.public, auto_stop_interval=p.auto_stop_interval,
            auto_delete_interval=p.auto_delete_interval, entrypoint=p.entrypoint,
            network_block_all=p.network_block_all, network_allow_list=p.network_allow_list,
            domain_allow_list=p.domain_allow_list, outbound_proxy_url=p.outbound_proxy_url,
            network_deny_list=p.network_deny_list,
            snapshot=p.snapshot,
            ephemeral=p.ephemeral,
            linked_sandbox=p.linked_sandbox,
            build_info=_build_info(p.image),
        )  # fmt: skip
        return Call("POST", self.ep.api("/sandbox"), "create sandbox", _sandbox, wire_body(body))

    def build_logs(self, sandbox_id: str) -> Call[None]:
        """The sandbox's image build log, followed until the build ends (streamed)."""
        url = self.ep.api(f"/sandbox/{seg(sandbox_id)}/build-logs")
        return Call(
            "GET", url, "sandbox build logs", lambda _: None, params={"follow": "true"},
            timeout=None,
        )  # fmt: skip

    def create_snapshot(self, sandbox_id: str, name: str) -> Call[WireSandbox]:
        url = self.ep.api(f"/sandbox/{seg(sandbox_id)}/snapshot")
        return Call("POST", url, "create snapshot", _sandbox, {"name": name}, timeout=None)

    def update_network(self, sandbox_id: str, body: UpdateNetworkSettings) -> Call[WireSandbox]:
        url = self.ep.api(f"/sandbox/{seg(sandbox_id)}/network-settings")
        return Call("POST", url, "update network settings", _sandbox, wire_body(body))

    def get_network(self, sandbox_id: str) -> Call[NetworkSettings]:
        url = self.ep.api(f"/sandbox/{seg(sandbox_id)}/network-settings")
        return Call(
            "GET", url, "get network settings", lambda d: NetworkSettings.from_wire(d, "policy")
        )

    def get(self, ref: str) -> Call[WireSandbox]:
        return Call("GET", self.ep.api(f"/sandbox/{seg(ref)}"), "get sandbox", _sandbox)

    def list(self, labels: dict[str, str] | None) -> Call[list[WireSandbox]]:
        params = {"labels": json.dumps(labels)} if labels else None

        def parse(data: Any) -> list[WireSandbox]:
            return SandboxList.from_wire(data, "sandbox list").items

        return Call("GET", self.ep.api("/sandbox"), "list sandboxes", parse, params=params)

    def nodes(self) -> Call[NodeList]:
        def parse(data: Any) -> list[Node]:
            if not isinstance(data, list):
                raise ValueError("the node list is not a JSON array")
            return [Node.from_wire(n, "node") for n in data]

        return Call("GET", self.ep.api("/nodes"), "list nodes", parse)

    def action(self, sandbox_id: str, action: str, timeout: float | None) -> Call[WireSandbox]:
        url = self.ep.api(f"/sandbox/{seg(sandbox_id)}/{action}")
        return Call("POST", url, f"{action} sandbox", _sandbox, timeout=timeout)

    def delete(self, sandbox_id: str, timeout: float | None) -> Call[None]:
        url = self.ep.api(f"/sandbox/{seg(sandbox_id)}")
        return Call("DELETE", url, "delete sandbox", lambda _: None, timeout=timeout)

    def create_ssh_access(self, sandbox_id: str, minutes: int | None) -> Call[SshAccess]:
        url = self.ep.api(f"/sandbox/{seg(sandbox_id)}/ssh-access")
        params = {"expiresInMinutes": str(minutes)} if minutes is not None else None
        return Call(
            "POST", url, "create SSH access", lambda d: SshAccess.from_wire(d), params=params
        )

    def revoke_ssh_access(self, sandbox_id: str, token: str | None) -> Call[WireSandbox]:
        url = self.ep.api(f"/sandbox/{seg(sandbox_id)}/ssh-access")
        params = {"token": token} if token else None
        return Call("DELETE", url, "revoke SSH access", _sandbox, params=params)

    def validate_ssh_access(self, token: str) -> Call[SshAccessValidation]:
        url = self.ep.api("/sandbox/ssh-access/validate")
        return Call(
            "GET",
            url,
            "validate SSH access",
            lambda d: SshAccessValidation.from_wire(d),
            params={"token": token},
        )

    def toolbox(self, wire: WireSandbox) -> Toolbox:
        base = wire.toolbox_proxy_url or self.ep.api_url.removesuffix("/api") + "/toolbox"
        return Toolbox(base, wire.id, wire.labels.get(LANGUAGE_LABEL, "python"))


def check_started(wire: WireSandbox) -> WireSandbox:
    if wire.state in FAILED_STATES:
        raise SandboxError(
            f"sandbox {wire.id} entered state {wire.state}: "
            f"{wire.error_reason or 'no reason given'}"
        )
    return wire


class SandboxData:
    """The sandbox's fields, refreshed from every answer about it."""

    id: str
    name: str
    state: str
    env: dict[str, str]
    labels: dict[str, str]
    cpu: int
    memory: int
    disk: int
    error_reason: str | None
    created_at: str
    toolbox_proxy_url: str
    auto_stop_interval: int
    auto_delete_interval: int
    auto_archive_interval: int
    auto_pause_interval: int
    public: bool
    network_block_all: bool
    network_allow_list: str | None
    domain_allow_list: str | None
    linked_sandbox_id: str | None

    def _apply(self, wire: WireSandbox) -> None:
        self.id, self.name, self.state = wire.id, wire.name, wire.state
        self.env, self.labels = dict(wire.env), dict(wire.labels)
        self.cpu, self.memory, self.disk = wire.cpu, wire.memory, wire.disk
        self.error_reason = wire.error_reason
        self.created_at = wire.created_at
        self.toolbox_proxy_url = wire.toolbox_proxy_url
        self.auto_stop_interval = wire.auto_stop_interval
        self.auto_delete_interval = wire.auto_delete_interval
        self.auto_archive_interval = wire.auto_archive_interval
        self.auto_pause_interval = wire.auto_pause_interval
        self.public = wire.public
        self.network_block_all = wire.network_block_all
        self.network_allow_list = wire.network_allow_list
        self.domain_allow_list = wire.domain_allow_list
        self.linked_sandbox_id = wire.linked_sandbox_id

    @property
    def language(self) -> str:
        return self.labels.get(LANGUAGE_LABEL, "python")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.state} {self.language}>"


class Sandbox(SyncControl, SandboxData):
    def __init__(self, transport: SyncTransport, calls: SandboxCalls, wire: WireSandbox) -> None:
        self._t = transport
        self._calls = calls
        self._apply(wire)
        toolbox = calls.toolbox(wire)
        self._toolbox = toolbox
        self.process = Process(transport, toolbox)
        self.code_interpreter = CodeInterpreter(transport, toolbox)
        self.fs = FileSystem(transport, toolbox)
        self.git = Git(transport, toolbox)
        self._env = EnvCalls(toolbox)
        self._control = ControlCalls(calls.ep, wire.id, toolbox)
        self._previews = PreviewCalls(calls.ep, wire.id)

    def refresh_data(self) -> None:
        self._apply(self._t.call(self._calls.get(self.id)))

    def start(self, timeout: float | None = 60) -> None:
        self._apply(check_started(self._t.call(self._calls.action(self.id, "start", timeout))))

    def stop(self, timeout: float | None = 60) -> None:
        self._apply(self._t.call(self._calls.action(self.id, "stop", timeout)))

    def delete(self, timeout: float | None = 60) -> None:
        self._t.call(self._calls.delete(self.id, timeout))
        self.state = "destroyed"

    def create_snapshot(self, name: str) -> None:
        """Its root's changes (on an image) or its workspace (on the default root) as
        snapshot `name`: `create(snapshot=name)` starts from them."""
        self._apply(self._t.call(self._calls.create_snapshot(self.id, name)))

    def update_network_settings(
        self, *, network_block_all: bool | None = None, network_allow_list: str | None = None,
        domain_allow_list: str | None = None, network_deny_list: str | None = None,
    ) -> None:  # fmt: skip
        """A new egress policy, in force from the next connection (Daytona's semantics)."""
        body = UpdateNetworkSettings(
            network_block_all, network_allow_list, domain_allow_list, network_deny_list
        )
        self._apply(self._t.call(self._calls.update_network(self.id, body)))

    def get_network_settings(self) -> NetworkSettings:
        """The effective egress policy (Cove)."""
        return self._t.call(self._calls.get_network(self.id))

    def get_work_dir(self) -> str:
        return self._t.call(self._env.work_dir())

    def create_ssh_access(self, expires_in_minutes: int | None = None) -> SshAccess:
        """A token for `ssh TOKEN@HOST -p PORT` (its `ssh_command`), valid that long (60)."""
        return self._t.call(self._calls.create_ssh_access(self.id, expires_in_minutes))

    def revoke_ssh_access(self, token: str | None = None) -> None:
        """Revoke one token (None: all of this sandbox's); its open connections close."""
        self._apply(self._t.call(self._calls.revoke_ssh_access(self.id, token)))

    def validate_ssh_access(self, token: str) -> SshAccessValidation:
        return self._t.call(self._calls.validate_ssh_access(token))

    def get_user_home_dir(self) -> str:
        return self._t.call(self._env.home_dir())

    def update_env(self, env: dict[str, str], *, unset: list[str] | None = None) -> None:
        """Processes started from now on get `env` (after `unset` names are removed)."""
        self._t.call(self._env.update_env(env, unset))

    def get_ports(self) -> list[int]:
        """TCP ports something listens on inside the sandbox (any address), ascending."""
        return self._t.call(self._env.ports())

    def is_port_in_use(self, port: int) -> bool:
        return self._t.call(self._env.port_in_use(port))

    # -- previews ------------------------------------------------------------------

    def get_preview_link(self, port: int) -> PortPreviewUrl:
        """The URL of `port` inside the sandbox; send `token` as `x-daytona-preview-token`."""
        return self._t.call(self._previews.link(port))

    def create_signed_preview_url(
        self, port: int, expires_in_seconds: int | None = None
    ) -> SignedPortPreviewUrl:
        """A URL that carries its own credential, until it expires (default 60 s)."""
        return self._t.call(self._previews.signed(port, expires_in_seconds))

    def expire_signed_preview_url(self, port: int, token: str) -> None:
        self._t.call(self._previews.expire(port, token))

    def set_public(self, public: bool) -> None:
        """Public previews need no token."""
        self._apply(self._t.call(self._previews.set_public(public)))


class AsyncSandbox(AsyncControl, SandboxData):
    def __init__(self, transport: AsyncTransport, calls: SandboxCalls, wire: WireSandbox) -> None:
        self._t = transport
        self._calls = calls
        self._apply(wire)
        toolbox = calls.toolbox(wire)
        self._toolbox = toolbox
        self.process = AsyncProcess(transport, toolbox)
        self.code_interpreter = AsyncCodeInterpreter(transport, toolbox)
        self.fs = AsyncFileSystem(transport, toolbox)
        self.git = AsyncGit(transport, toolbox)
        self._env = EnvCalls(toolbox)
        self._control = ControlCalls(calls.ep, wire.id, toolbox)
        self._previews = PreviewCalls(calls.ep, wire.id)

    async def refresh_data(self) -> None:
        self._apply(await self._t.call(self._calls.get(self.id)))

    async def start(self, timeout: float | None = 60) -> None:
        self._apply(
            check_started(await self._t.call(self._calls.action(self.id, "start", timeout)))
        )

    async def stop(self, timeout: float | None = 60) -> None:
        self._apply(await self._t.call(self._calls.action(self.id, "stop", timeout)))

    async def delete(self, timeout: float | None = 60) -> None:
        await self._t.call(self._calls.delete(self.id, timeout))
        self.state = "destroyed"

    async def create_snapshot(self, name: str) -> None:
        self._apply(await self._t.call(self._calls.create_snapshot(self.id, name)))

    async def update_network_settings(
        self, *, network_block_all: bool | None = None, network_allow_list: str | None = None,
        domain_allow_list: str | None = None, network_deny_list: str | None = None,
    ) -> None:  # fmt: skip
        """A new egress policy, in force from the next connection (Daytona's semantics)."""
        body = UpdateNetworkSettings(
            network_block_all, network_allow_list, domain_allow_list, network_deny_list
        )
        self._apply(await self._t.call(self._calls.update_network(self.id, body)))

    async def get_network_settings(self) -> NetworkSettings:
        """The effective egress policy (Cove)."""
        return await self._t.call(self._calls.get_network(self.id))

    async def get_work_dir(self) -> str:
        return await self._t.call(self._env.work_dir())

    async def create_ssh_access(self, expires_in_minutes: int | None = None) -> SshAccess:
        """A token for `ssh TOKEN@HOST -p PORT` (its `ssh_command`), valid that long (60)."""
        return await self._t.call(self._calls.create_ssh_access(self.id, expires_in_minutes))

    async def revoke_ssh_access(self, token: str | None = None) -> None:
        """Revoke one token (None: all of this sandbox's); its open connections close."""
        self._apply(await self._t.call(self._calls.revoke_ssh_access(self.id, token)))

    async def validate_ssh_access(self, token: str) -> SshAccessValidation:
        return await self._t.call(self._calls.validate_ssh_access(token))

    async def get_user_home_dir(self) -> str:
        return await self._t.call(self._env.home_dir())

    async def update_env(self, env: dict[str, str], *, unset: list[str] | None = None) -> None:
        """Processes started from now on get `env` (after `unset` names are removed)."""
        await self._t.call(self._env.update_env(env, unset))

    async def get_ports(self) -> list[int]:
        """TCP ports something listens on inside the sandbox (any address), ascending."""
        return await self._t.call(self._env.ports())

    async def is_port_in_use(self, port: int) -> bool:
        return await self._t.call(self._env.port_in_use(port))
        call = self._toolbox.call("GET", "/user-home-dir", "get home dir", lambda d: str(d["dir"]))
        return await self._t.call(call)

    # -- previews ------------------------------------------------------------------

    async def get_preview_link(self, port: int) -> PortPreviewUrl:
        return await self._t.call(self._previews.link(port))

    async def create_signed_preview_url(
        self, port: int, expires_in_seconds: int | None = None
    ) -> SignedPortPreviewUrl:
        return await self._t.call(self._previews.signed(port, expires_in_seconds))

    async def expire_signed_preview_url(self, port: int, token: str) -> None:
        await self._t.call(self._previews.expire(port, token))

    async def set_public(self, public: bool) -> None:
        self._apply(await self._t.call(self._previews.set_public(public)))
