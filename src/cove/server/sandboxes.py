"""Sandbox lifecycle: the store's records and the runtime backend, kept in step.

Every state change goes through here, under a per-sandbox lock. A watcher
task per running sandbox turns an unexpected agent exit into state `error`
with the backend's reason; `start` recovers such a sandbox with its
workspace intact.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import logging
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from cove.runtime import RuntimeBackend, RuntimeHandle, SandboxSpec
from cove.runtime.base import NodeUsage
from cove.runtime.endpoint import AgentEndpoint
from cove.server.records import RecordSpec, SandboxRecord, SandboxState
from cove.server.store import NameTaken, Store
from cove.settings import GiB, Settings
from cove.wire.errors import (
    AgentUnavailable,
    BadRequest,
    Conflict,
    CoveError,
    NoCapacity,
    NotFound,
    SandboxError,
)
from cove.wire.protocol import (
    LANGUAGE_LABEL,
    LANGUAGES,
    CreateSandboxRequest,
    NetworkPolicy,
    UpdateNetworkSettings,
)

log = logging.getLogger("cove.server")

Nodes = list[NodeUsage]  # (a module-level name: the class has a method called `list`)
SpecHook = Callable[[RecordSpec, CreateSandboxRequest], None]
# May `owner` run a sandbox of this spec (its own record when it exists)? Raises if not.
AdmitHook = Callable[[str, RecordSpec, "SandboxRecord | None"], None]
# How long a create waits for its image build before answering `pending_build`:
# an image served whole from the cache answers `started`; one that needed work
# answers `pending_build` however fast it was, so the SDK follows its log.
QUICK_BUILD = 0.5
BUILDING = (SandboxState.PENDING_BUILD, SandboxState.BUILDING_SNAPSHOT)


class ImageBuilds(Protocol):
    async def build_for(self, r: SandboxRecord, building: Callable[[], None]) -> bool:
        """Build `r.spec.dockerfile` and set the spec's image; `building()` once it starts.

        True when the build did work (not all from the cache): its log is worth following."""


class SandboxService:
    def __init__(self, store: Store, backend: RuntimeBackend, settings: Settings) -> None:
        self.store = store
        self.backend = backend
        self.settings = settings
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._activity: dict[str, float] = {}
        # Long-lived connections open now (previews): a sandbox with one is active.
        self._open: Counter[str] = Counter()
        # Extension points for features built on the lifecycle: spec hooks
        # may adjust the spec of a new sandbox (entrypoint parsing); change
        # callbacks hear of every state change (the auto-stop sweeper).
        self.spec_hooks: list[SpecHook] = []
        # Checks a new sandbox's spec needs I/O for (its build context is in the
        # object store), awaited before admission: a 4xx at the request.
        self.create_checks: list[Callable[[str, RecordSpec], Awaitable[None]]] = []
        # Quotas and admission control, run right before a create's record is
        # written (no await between: concurrent creates cannot both pass) and
        # before a stopped sandbox starts.
        self.admit_hooks: list[AdmitHook] = []
        self.on_change: list[Callable[[], None]] = []
        # State listeners hear every record's new state, a create's first
        # (`creating`) included (Prometheus counters).
        self.on_state: list[Callable[[SandboxRecord], None]] = []
        # Deletion listeners drop what they keep per sandbox (metrics history).
        self.on_delete: list[Callable[[str], None]] = []
        # Builds sandboxes' images (`buildInfo`); None: the backend cannot.
        self.image_builds: ImageBuilds | None = None
        # Creates still waiting to answer -> whether their build did work. A
        # fact, not a timing: a build that ended just as the wait did was once
        # answered `started`, and the SDK never followed its log.
        self._fresh_builds: dict[str, bool] = {}
        self._build_tasks: set[asyncio.Task[None]] = set()

    # -- start-up and shut-down ---------------------------------------------

    async def startup(self) -> None:
        """Find our sandboxes again after a control-plane restart."""
        records = self.store.list()
        for r in records:
            if r.state in BUILDING:
                self._set(
                    r, SandboxState.BUILD_FAILED, "the control plane restarted during the build"
                )
        # A create the control plane died in: whatever the backend made of it
        # (a reservation, a workspace, even a running agent) is a leftover.
        creating = {r.id for r in records if r.state == SandboxState.CREATING}
        removed = await self.backend.cleanup_leftovers({r.id for r in records} - creating)
        if removed:
            log.info("removed runtime leftovers of unknown sandboxes: %s", ", ".join(removed))
        self.backend.serve()
        for r in records:
            if r.state in (SandboxState.CREATING, SandboxState.STARTING):
                await self._interrupted(r)
                continue
            if r.state != SandboxState.STARTED:
                continue
            handle = self._handle(r)
            if self.backend.is_running(handle):
                await self.backend.reattach(handle, self._runtime_spec(r))
                self._watch(r.id, handle)
            else:
                reason = await self.backend.down_reason(handle)
                self._set(
                    r,
                    SandboxState.ERROR,
                    reason or "the sandbox was not running when the control plane started",
                )

    async def _interrupted(self, r: SandboxRecord) -> None:
        """A create or start the control plane died in: nobody was told it worked, so
        nothing of it runs on; the record says why (a start recovers it, a delete ends it)."""
        doing = "created" if r.state == SandboxState.CREATING else "started"
        if r.state == SandboxState.STARTING:
            try:
                await self.backend.stop(self._handle(r), grace=1.0)
            except CoveError as err:  # e.g. its node is gone: nothing runs there either
                log.warning("sandbox %s: stopping an interrupted start: %s", r.id, err.message)
        self._set(
            r,
            SandboxState.ERROR,
            f"the control plane restarted while the sandbox was being {doing}",
        )

    async def shutdown(self) -> None:
        """Stop watching; sandboxes keep running for the next control plane."""
        for task in self._watchers.values():
            task.cancel()
        self.flush_activity()
        # Backends may hold sandboxes no record owns (a warm pool): those go.
        await self.backend.close()

    # -- records ---------------------------------------------------------------

    def get(self, owner: str, id_or_name: str) -> SandboxRecord:
        r = self.store.get(owner, id_or_name)
        if r is None:
            raise NotFound(f"sandbox {id_or_name!r} not found")
        return r

    def list(self, owner: str, labels: dict[str, str] | None = None) -> list[SandboxRecord]:
        return self.store.list_labelled(owner, labels or {})

    def lock(self, sandbox_id: str) -> asyncio.Lock:
        """The lock every state or spec change of this sandbox is made under."""
        return self._locks[sandbox_id]

    def handle(self, r: SandboxRecord) -> RuntimeHandle:
        return self._handle(r)

    def note_activity(self, sandbox_id: str) -> None:
        """Activity that postpones auto-stop (a toolbox call, `refresh_activity`)."""
        self._activity[sandbox_id] = time.time()

    def changed(self) -> None:
        """Tell the change listeners (the sweeper) that a record's timing changed."""
        for callback in self.on_change:
            callback()

    def _handle(self, r: SandboxRecord) -> RuntimeHandle:
        return RuntimeHandle(r.id, r.backend, r.runtime)

    def _set(self, r: SandboxRecord, state: SandboxState, reason: str | None = None) -> None:
        r.state = state
        r.error_reason = reason
        self.store.save(r)
        for listener in self.on_state:
            listener(r)
        for callback in self.on_change:
            callback()

    # -- create ---------------------------------------------------------------

    def _spec(self, req: CreateSandboxRequest) -> RecordSpec:
        s = self.settings
        language = req.labels.get(LANGUAGE_LABEL, "python")
        if language not in LANGUAGES:
            raise BadRequest(
                f"label '{LANGUAGE_LABEL}' must be one of {', '.join(LANGUAGES)}, got {language!r}"
            )
        cpu = req.cpu if req.cpu is not None else s.default_cpus
        memory = req.memory if req.memory is not None else s.default_memory_gib
        disk = req.disk if req.disk is not None else s.default_disk_gib
        for field, value, low, high in (
            ("cpu", cpu, 1, 64),
            ("memory", memory, 1, 256),
            ("disk", disk, 1, 1024),
        ):
            if not low <= value <= high:
                raise BadRequest(f"field '{field}' must be between {low} and {high}, got {value}")
        if req.gpu:
            raise BadRequest("field 'gpu': this server has no GPUs to give")
        for key in req.env:
            if not key or "=" in key or "\0" in key:
                raise BadRequest(f"field 'env' has an invalid variable name {key!r}")
        labels = dict(req.labels)
        labels.setdefault(LANGUAGE_LABEL, language)
        auto_delete = -1 if req.auto_delete_interval is None else req.auto_delete_interval
        if req.ephemeral:
            # Ephemeral means deleted as soon as it stops: any other interval contradicts it.
            if req.auto_delete_interval not in (None, 0):
                raise BadRequest(
                    "fields 'ephemeral' and 'autoDeleteInterval' cannot be used together "
                    "(an ephemeral sandbox is deleted as soon as it stops)"
                )
            auto_delete = 0
        spec = RecordSpec(
            env=req.env,
            labels=labels,
            cpu=cpu,
            memory=memory,
            disk=disk,
            language=language,
            entrypoint=req.entrypoint,
            auto_stop_interval=req.auto_stop_interval or 0,
            auto_delete_interval=auto_delete,
            public=bool(req.public),
            network=NetworkPolicy.parse(
                block_all=req.network_block_all,
                allow_list=req.network_allow_list,
                deny_list=req.network_deny_list,
                domain_allow_list=req.domain_allow_list,
                proxy_url=req.outbound_proxy_url,
            ),
        )
        for hook in self.spec_hooks:
            hook(spec, req)
        return spec

    def _runtime_spec(self, r: SandboxRecord) -> SandboxSpec:
        sp = r.spec
        return SandboxSpec(
            id=r.id,
            cpus=float(sp.cpu),
            memory_bytes=sp.memory * GiB,
            disk_bytes=sp.disk * GiB,
            pids=self.settings.default_pids,
            env={**sp.network.proxy_env(), **sp.env},
            language=sp.language,
            workdir=sp.workdir,
            entrypoint=sp.entrypoint,
            image=sp.image_id,
            max_output_bytes=self.settings.max_output_bytes,
            max_log_bytes=self.settings.max_log_bytes,
            network=sp.network,
            name=r.name,
            link_group=sp.linked_sandbox_id or r.id,
        )

    def _link(self, owner: str, req: CreateSandboxRequest, spec: RecordSpec) -> None:
        """A follower's owner, checked as Daytona does: same key, not itself a follower."""
        if not req.linked_sandbox:
            return
        target = self.store.get(owner, req.linked_sandbox)
        if target is None:  # another key's sandbox is not found, as on every route
            raise NotFound(f"field 'linkedSandbox': sandbox {req.linked_sandbox!r} not found")
        if target.spec.linked_sandbox_id is not None:
            raise BadRequest(
                f"field 'linkedSandbox': sandbox {req.linked_sandbox!r} is itself linked to "
                "another sandbox and cannot be linked to"
            )
        if spec.auto_delete_interval != 0:
            raise BadRequest(
                "field 'linkedSandbox': a linked sandbox must be ephemeral "
                "(ephemeral=True, or autoDeleteInterval 0)"
            )
        spec.linked_sandbox_id = target.id

    def followers(self, owner_id: str) -> builtins.list[SandboxRecord]:
        """The sandboxes linked to `owner_id`."""
        return [r for r in self.store.list() if r.spec.linked_sandbox_id == owner_id]

    async def create(self, owner: str, req: CreateSandboxRequest) -> SandboxRecord:
        sid = str(uuid.uuid4())
        name = req.name or sid
        if len(name) > 255 or "/" in name or "\0" in name or not name.strip():
            raise BadRequest("field 'name' must be 1-255 characters without '/' or NUL")
        spec = self._spec(req)
        self._link(owner, req, spec)
        for check in self.create_checks:
            await check(owner, spec)
        self.admit(owner, spec)
        r = SandboxRecord(sid, owner, name, SandboxState.CREATING, spec, self.backend.name)
        try:
            self.store.insert(r)
        except NameTaken:
            raise Conflict(f"a sandbox named {name!r} already exists") from None
        for listener in self.on_state:
            listener(r)
        if r.spec.dockerfile and self.image_builds is not None:
            self._set(r, SandboxState.PENDING_BUILD)
            self._fresh_builds[r.id] = False
            task = asyncio.create_task(self._build_and_start(r, self.image_builds))
            self._build_tasks.add(task)
            task.add_done_callback(self._build_tasks.discard)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), QUICK_BUILD)
            finally:
                fresh = self._fresh_builds.pop(r.id)
            if fresh or r.state in BUILDING or r.state == SandboxState.BUILD_FAILED:
                # The official SDK follows the build log only when create says
                # pending_build: say so unless the image was ready at once.
                return dataclasses.replace(r, state=SandboxState.PENDING_BUILD)
            return r
        async with self._locks[sid]:
            await self._create_locked(r)
        return r

    def admit(self, owner: str, spec: RecordSpec, r: SandboxRecord | None = None) -> None:
        for hook in self.admit_hooks:
            hook(owner, spec, r)

    async def _create_locked(self, r: SandboxRecord, *, in_background: bool = False) -> None:
        try:
            handle = await self.backend.create(self._runtime_spec(r))
        except NoCapacity as err:
            if in_background:  # after an image build: nobody waits for a refusal
                self._set(r, SandboxState.ERROR, err.message)
                return
            # Nothing was made anywhere: the request is refused, not kept as a failure.
            self.store.delete(r.id)
            self._locks.pop(r.id, None)
            raise
        except CoveError as err:
            self._set(r, SandboxState.ERROR, err.message)
            return
        except Exception as exc:
            log.exception("creating sandbox %s failed", r.id)
            self._set(r, SandboxState.ERROR, f"creating the sandbox failed: {exc}")
            return
        try:
            r.runtime = handle.state
            await self._start_locked(r)
        except CoveError as err:
            self._set(r, SandboxState.ERROR, err.message)
        except Exception as exc:
            log.exception("creating sandbox %s failed", r.id)
            self._set(r, SandboxState.ERROR, f"creating the sandbox failed: {exc}")

    async def _build_and_start(self, r: SandboxRecord, builds: ImageBuilds) -> None:
        async with self._locks[r.id]:
            try:
                worked = await builds.build_for(
                    r, lambda: self._set(r, SandboxState.BUILDING_SNAPSHOT)
                )
                if worked and r.id in self._fresh_builds:  # `create` has yet to answer
                    self._fresh_builds[r.id] = True
            except CoveError as err:
                self._set(r, SandboxState.BUILD_FAILED, err.message)
                return
            except Exception as exc:
                log.exception("building the image of sandbox %s failed", r.id)
                self._set(r, SandboxState.BUILD_FAILED, f"the image build failed: {exc}")
                return
            await self._create_locked(r, in_background=True)

    # -- start / stop / delete --------------------------------------------------

    async def _start_locked(self, r: SandboxRecord) -> None:
        handle = self._handle(r)
        self._set(r, SandboxState.STARTING)
        try:
            await self.backend.start(handle, self._runtime_spec(r))
        finally:
            r.runtime = handle.state
        r.last_activity_at = time.time()
        self._set(r, SandboxState.STARTED)
        self._watch(r.id, handle)

    async def start(self, owner: str, id_or_name: str) -> SandboxRecord:
        r = self.get(owner, id_or_name)
        async with self._locks[r.id]:
            r = self.get(owner, r.id)
            if r.state == SandboxState.STARTED and self.backend.is_running(self._handle(r)):
                return r
            self.admit(owner, r.spec, r)
            if r.state == SandboxState.ERROR:  # recover: clear what is left of the failed run
                await self.backend.stop(self._handle(r), grace=1.0)
            try:
                await self._start_locked(r)
            except CoveError as err:
                self._set(r, SandboxState.ERROR, err.message)
                raise SandboxError(f"sandbox {r.id} failed to start: {err.message}") from None
        return r

    async def stop(self, owner: str, id_or_name: str) -> SandboxRecord:
        r = self.get(owner, id_or_name)
        async with self._locks[r.id]:
            r = self.get(owner, r.id)
            await self._stop_locked(r)
        return r

    async def _stop_locked(self, r: SandboxRecord) -> None:
        self._set(r, SandboxState.STOPPING)
        self._unwatch(r.id)
        handle = self._handle(r)
        await self.backend.stop(handle)
        r.runtime = handle.state
        self._set(r, SandboxState.STOPPED)

    async def delete(self, owner: str, id_or_name: str) -> SandboxRecord:
        r = self.get(owner, id_or_name)
        # Followers live only as long as their owner: they go first.
        for follower in self.followers(r.id):
            with contextlib.suppress(NotFound):
                await self.delete(follower.owner, follower.id)
        async with self._locks[r.id]:
            self._unwatch(r.id)
            await self.backend.destroy(self._handle(r))
            self.store.delete(r.id)
            r.state = SandboxState.DESTROYED
        # A follower created while the owner was going (it checked the owner first).
        for follower in self.followers(r.id):
            with contextlib.suppress(NotFound):
                await self.delete(follower.owner, follower.id)
        self._locks.pop(r.id, None)
        self._activity.pop(r.id, None)
        for callback in self.on_delete:
            callback(r.id)
        return r

    def set_public(self, owner: str, id_or_name: str, public: bool) -> SandboxRecord:
        """Whether its previews need a token (a stored setting: nothing restarts)."""
        r = self.get(owner, id_or_name)
        r.spec.public = public
        self.store.save(r)
        return r

    # -- network ------------------------------------------------------------------

    async def update_network(
        self, owner: str, id_or_name: str, req: UpdateNetworkSettings
    ) -> SandboxRecord:
        """A new egress policy, in force from the running sandbox's next connection."""
        if all(
            v is None
            for v in (
                req.network_block_all,
                req.network_allow_list,
                req.domain_allow_list,
                req.network_deny_list,
            )
        ):
            raise BadRequest(
                "set at least one of networkBlockAll, networkAllowList, domainAllowList, "
                "networkDenyList"
            )
        r = self.get(owner, id_or_name)
        async with self._locks[r.id]:
            r = self.get(owner, r.id)
            old = r.spec.network
            new = old.updated(
                block_all=req.network_block_all,
                allow_list=req.network_allow_list,
                deny_list=req.network_deny_list,
                domain_allow_list=req.domain_allow_list,
            )
            if r.state == SandboxState.STARTED:
                await self.backend.set_network(self._handle(r), old, new)
            r.spec.network = new
            self.store.save(r)
        return r

    def network_note(self) -> str | None:
        """None if sandboxes here get egress under their policy, else why not."""
        return self.backend.network_note

    # -- hosts -----------------------------------------------------------------

    async def nodes(self) -> Nodes:
        """The backend's hosts; for a single-host backend, this host from the records."""
        listed = await self.backend.nodes()
        if listed is not None:
            return listed
        held = self.store.list()
        running = [r for r in held if r.state in (SandboxState.STARTED, SandboxState.STARTING)]
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB
        return [
            NodeUsage(
                id=self.backend.name,
                alive=True,
                capacity={"cpu": float(os.cpu_count() or 1), "memory": round(memory, 2)},
                used={
                    "cpu": float(sum(r.spec.cpu for r in running)),
                    "memory": float(sum(r.spec.memory for r in running)),
                },
                sandboxes=len(held),
            )
        ]

    # -- toolbox access -----------------------------------------------------------

    def agent_endpoint(self, owner: str, sandbox_id: str) -> AgentEndpoint:
        """Where to reach a started sandbox's agent; a clear error otherwise."""
        found = self.store.reach(owner, sandbox_id)  # by id only: a name is not a route here
        if found is None:
            raise NotFound(f"sandbox {sandbox_id!r} not found")
        state, reason, backend, runtime = found
        if state != SandboxState.STARTED:
            why = f": {reason}" if reason else ""
            raise SandboxError(f"sandbox {sandbox_id} is {state}{why}", body={"state": state.value})
        self._activity[sandbox_id] = time.time()
        return self.backend.agent_endpoint(RuntimeHandle(sandbox_id, backend, runtime))

    async def why_unreachable(self, owner: str, sandbox_id: str) -> CoveError:
        """`explain_unreachable`, once the backend has checked what holds the sandbox
        (a node that died mid-request answers `node lost`, not "try again")."""
        r = self.store.get(owner, sandbox_id)
        if r is not None:
            handle = self._handle(r)
            await self.backend.probe(handle)
            if not self.backend.is_running(handle) and not r.error_reason:
                reason = await self.backend.down_reason(handle)
                if reason:
                    return SandboxError(
                        f"sandbox {sandbox_id} failed: {reason}",
                        body={"state": SandboxState.ERROR.value},
                    )
        return self.explain_unreachable(owner, sandbox_id)

    def explain_unreachable(self, owner: str, sandbox_id: str) -> CoveError:
        """Why an agent did not answer: a dead sandbox says so, with its reason."""
        r = self.store.get(owner, sandbox_id)
        if r is not None and not self.backend.is_running(self._handle(r)):
            reason = r.error_reason or "its agent is no longer running"
            return SandboxError(
                f"sandbox {sandbox_id} failed: {reason}", body={"state": SandboxState.ERROR.value}
            )
        return AgentUnavailable(f"the agent of sandbox {sandbox_id} did not answer; try again")

    def last_activity(self, sandbox_id: str) -> float:
        """Latest toolbox use seen by this process (0 if none since the last flush);
        now, while a long-lived connection to the sandbox is open."""
        if self._open[sandbox_id]:
            return time.time()
        return self._activity.get(sandbox_id, 0.0)

    @contextlib.contextmanager
    def connection_open(self, sandbox_id: str) -> Iterator[None]:
        """Counts as activity for as long as it lasts (an open preview WebSocket or stream)."""
        self._open[sandbox_id] += 1
        try:
            yield
        finally:
            self._open[sandbox_id] -= 1
            if not self._open[sandbox_id]:
                del self._open[sandbox_id]
            self._activity[sandbox_id] = time.time()

    def flush_activity(self) -> None:
        for sid, when in self._activity.items():
            self.store.touch(sid, when)
        self._activity.clear()

    # -- watching -------------------------------------------------------------

    def _watch(self, sid: str, handle: RuntimeHandle) -> None:
        self._unwatch(sid)
        self._watchers[sid] = asyncio.create_task(self._watcher(sid, handle))

    def _unwatch(self, sid: str) -> None:
        task = self._watchers.pop(sid, None)
        if task is not None:
            task.cancel()

    async def _watcher(self, sid: str, handle: RuntimeHandle) -> None:
        reason = await self.backend.wait_exit(handle)
        if self._watchers.get(sid) is not asyncio.current_task():
            return  # a stop or delete took over
        self._watchers.pop(sid, None)
        r = self.store.get_any(sid)
        if r is not None and r.state == SandboxState.STARTED:
            log.warning("sandbox %s failed: %s", sid, reason)
            self._set(r, SandboxState.ERROR, reason)

    async def close(self) -> None:
        for task in list(self._watchers.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
