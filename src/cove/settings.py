"""One settings object for the server, declared once; env vars and CLI flags map onto it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from cove.agent.config import DEFAULT_LOG_CAP, DEFAULT_OUTPUT_CAP

MiB = 1024 * 1024
GiB = 1024 * MiB


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "cove"


def default_runtime_dir() -> Path | None:
    """The read-only environment bound into sandboxes (Python packages, esbuild).

    `make install` builds it next to the source tree; COVE_RUNTIME_DIR overrides.
    """
    candidate = Path(__file__).resolve().parents[2] / "build" / "sandbox-runtime"
    return candidate if candidate.is_dir() else None


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 3000
    data_dir: Path = field(default_factory=default_data_dir)
    # Accepted keys; empty means "generate one and keep it in the data dir".
    api_keys: list[str] = field(default_factory=list)
    backend: str = "auto"
    # Where workspaces live (None: /var/lib/cove as root, else under data_dir).
    sandbox_root: Path | None = None
    # Sandboxes kept pre-started for fast creates (0 = no pool). A create of
    # the default shape adopts one: ~27 ms to a first exec instead of ~125 ms.
    warm_pool: int = 2
    runtime_dir: Path | None = field(default_factory=default_runtime_dir)
    # The image store: layers, images, tags (None: <data_dir>/images).
    image_dir: Path | None = None
    # Debian base trees kept across image stores (e.g. shared by test servers).
    image_base_cache: Path | None = None
    # "default": an image that cannot be had (and has no build steps) runs on
    # the default root with a warning in its build log, instead of failing.
    image_fallback: str = ""
    # Where references without a registry are pulled from; credentials for pulls.
    image_registry: str = "docker.io"
    # Bytes of image layers kept; least recently used images beyond it are evicted
    # after each build (never one a sandbox runs on, nor a tagged one).
    image_cache_bytes: int = 20 * GiB
    registry_auth_file: Path | None = None
    max_output_bytes: int = DEFAULT_OUTPUT_CAP
    # Session command logs kept on disk, per stream (live followers get all output).
    max_log_bytes: int = DEFAULT_LOG_CAP
    max_request_bytes: int = 16 * MiB
    default_cpus: int = 1
    default_memory_gib: int = 1
    default_disk_gib: int = 3
    default_pids: int = 512
    # Each sandbox's disk enforced ("auto": a loop-mounted ext4 of `disk` GiB per
    # sandbox when root; "off": the size is recorded only). See docs/disk-quota.md.
    disk_quota: str = "auto"
    # Per API key: sandboxes it holds, and the CPUs, memory and disk they are
    # given (0: no limit). CPU and memory count sandboxes not stopped; the
    # count and disk count all. `quota_file`: JSON {key hash or label: {...}}
    # overriding them for some keys (docs/quotas.md).
    quota_sandboxes: int = 100
    quota_cpu: int = 64
    quota_memory_gib: int = 128
    quota_disk_gib: int = 1024
    quota_file: Path | None = None
    # Admission: creates and starts are refused (503) while the host has less
    # available memory, or less free space where sandbox disks live, than these.
    admit_min_memory_mib: int = 256
    admit_min_disk_gib: int = 2
    # A wildcard DNS domain for host-based preview URLs (`{port}-{sandboxId}.DOMAIN`);
    # empty: preview URLs use the path form `/preview/{sandboxId}/{port}/`.
    preview_domain: str = ""
    # Sandbox egress: "auto" (on when root with nftables; else loopback only) or "off".
    network: str = "auto"
    # The resolver the policy resolver forwards to ("HOST" or "HOST:PORT";
    # empty: the host's first nameserver).
    network_dns: str = ""
    # Connections this control plane's sandboxes may hold together in the host's
    # conntrack table (0: half of nf_conntrack_max, so the host keeps the rest).
    network_conn_cap: int = 0
    # The CA bundle RUN steps of image builds trust ("none": the image's own);
    # empty: the `cert` of the host's pip configuration, if it names one.
    build_ca_bundle: str = ""
    # Seconds in a "minute" of autoStopInterval/autoDeleteInterval (tests shorten it).
    lifecycle_minute: float = 60.0
    # Seconds between metrics samples of each started sandbox (0 = no history),
    # and how many samples a sandbox's history keeps (24 h at the default).
    metrics_interval: float = 15.0
    metrics_keep: int = 5760
    # The SSH server's port (0: no SSH server); it listens on `host`.
    ssh_port: int = 0
    # The `ray` backend (docs/scale-out.md): the cluster's address (host:port of
    # its GCS), the secret node relays check (none: generated, kept in the data
    # dir), where nodes keep sandbox state (None: /var/lib/cove/ray-nodes as
    # root), how long a create waits for room, the relays' port (0: any free).
    ray_address: str | None = None
    ray_secret: str | None = None
    ray_node_dir: str | None = None
    ray_placement_timeout: float = 30.0
    ray_relay_port: int = 0
    # Seconds one image build step (a RUN, a COPY) may take before it is killed and the
    # build fails naming it: a Dockerfile that never ends must not hold a build for ever.
    build_step_timeout: float = 3600.0
    # GiB one image build step (a RUN, a COPY) may write: its changes live on a
    # filesystem of that size (as a sandbox's disk does), so a RUN that fills it
    # fails with ENOSPC and the build names the bound. Sparse: costs what is written.
    build_disk_gib: float = 20.0
    ray_warm_pool: int = 0  # per node: pooled sandboxes idle outside Ray's accounting
    # An S3-compatible store for the official SDK's build contexts
    # (`Image.add_local_file`/`add_local_dir`/`from_dockerfile` with a COPY;
    # docs/images.md). Empty URL: none (the Cove SDK and `cove build` send the
    # context straight to the server). What push-access hands out: with a
    # role ARN, 15-minute credentials scoped to the caller's prefix (STS
    # AssumeRole at `..._sts_url`, default the store's URL); else, only with
    # `object_storage_share_key` "1", this key itself. `..._ca_bundle`: a PEM
    # file of a private CA the server trusts for the store.
    object_storage_url: str = ""
    object_storage_bucket: str = "cove-build-contexts"
    object_storage_region: str = "us-east-1"
    object_storage_access_key: str = ""
    object_storage_secret_key: str = ""
    object_storage_ca_bundle: Path | None = None
    object_storage_share_key: str = ""
    object_storage_role_arn: str = ""
    object_storage_sts_url: str = ""
    # Debugging: trace allocations, write a snapshot here at each SIGUSR2 (server/memdebug.py).
    debug_tracemalloc: str = ""

    ENV = {
        "host": "COVE_HOST",
        "port": "COVE_PORT",
        "data_dir": "COVE_DATA_DIR",
        "api_keys": "COVE_API_KEY",
        "backend": "COVE_BACKEND",
        "sandbox_root": "COVE_SANDBOX_ROOT",
        "warm_pool": "COVE_WARM_POOL",
        "runtime_dir": "COVE_RUNTIME_DIR",
        "image_dir": "COVE_IMAGE_DIR",
        "image_base_cache": "COVE_IMAGE_BASE_CACHE",
        "image_fallback": "COVE_IMAGE_FALLBACK",
        "image_registry": "COVE_IMAGE_REGISTRY",
        "image_cache_bytes": "COVE_IMAGE_CACHE_BYTES",
        "registry_auth_file": "COVE_REGISTRY_AUTH_FILE",
        "max_output_bytes": "COVE_MAX_OUTPUT_BYTES",
        "max_log_bytes": "COVE_MAX_LOG_BYTES",
        "lifecycle_minute": "COVE_LIFECYCLE_MINUTE_SECONDS",
        "metrics_interval": "COVE_METRICS_INTERVAL_SECONDS",
        "metrics_keep": "COVE_METRICS_KEEP",
        "preview_domain": "COVE_PREVIEW_DOMAIN",
        "ssh_port": "COVE_SSH_PORT",
        "network": "COVE_NETWORK",
        "network_dns": "COVE_NETWORK_DNS",
        "network_conn_cap": "COVE_NETWORK_CONN_CAP",
        "disk_quota": "COVE_DISK_QUOTA",
        "quota_sandboxes": "COVE_QUOTA_SANDBOXES",
        "quota_cpu": "COVE_QUOTA_CPU",
        "quota_memory_gib": "COVE_QUOTA_MEMORY_GIB",
        "quota_disk_gib": "COVE_QUOTA_DISK_GIB",
        "quota_file": "COVE_QUOTA_FILE",
        "admit_min_memory_mib": "COVE_ADMIT_MIN_MEMORY_MIB",
        "admit_min_disk_gib": "COVE_ADMIT_MIN_DISK_GIB",
        "build_ca_bundle": "COVE_BUILD_CA_BUNDLE",
        "ray_address": "COVE_RAY_ADDRESS",
        "ray_secret": "COVE_RAY_SECRET",
        "ray_node_dir": "COVE_RAY_NODE_DIR",
        "ray_placement_timeout": "COVE_RAY_PLACEMENT_TIMEOUT",
        "ray_relay_port": "COVE_RAY_RELAY_PORT",
        "build_step_timeout": "COVE_BUILD_STEP_TIMEOUT",
        "build_disk_gib": "COVE_BUILD_DISK_GIB",
        "ray_warm_pool": "COVE_RAY_WARM_POOL",
        "object_storage_url": "COVE_OBJECT_STORAGE_URL",
        "object_storage_bucket": "COVE_OBJECT_STORAGE_BUCKET",
        "object_storage_region": "COVE_OBJECT_STORAGE_REGION",
        "object_storage_access_key": "COVE_OBJECT_STORAGE_ACCESS_KEY",
        "object_storage_secret_key": "COVE_OBJECT_STORAGE_SECRET_KEY",
        "object_storage_ca_bundle": "COVE_OBJECT_STORAGE_CA_BUNDLE",
        "object_storage_share_key": "COVE_OBJECT_STORAGE_SHARE_KEY",
        "object_storage_role_arn": "COVE_OBJECT_STORAGE_ROLE_ARN",
        "object_storage_sts_url": "COVE_OBJECT_STORAGE_STS_URL",
        "debug_tracemalloc": "COVE_DEBUG_TRACEMALLOC",
    }

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, then environment variables, then explicit overrides (CLI flags)."""
        env = os.environ if environ is None else environ
        settings = cls()
        types = {f.name: f.type for f in fields(cls)}
        for name, var in cls.ENV.items():
            if env.get(var):
                setattr(settings, name, _parse(types[name], env[var], var))
        for name, value in overrides.items():
            if value is not None:
                setattr(settings, name, value)
        settings.data_dir = Path(settings.data_dir)
        return settings


def _parse(type_name: object, raw: str, var: str) -> object:
    text = str(type_name)
    try:
        if text.startswith("int"):
            return int(raw)
        if text.startswith("float"):
            return float(raw)
        if text.startswith("list"):
            return [k.strip() for k in raw.split(",") if k.strip()]
        if "Path" in text:
            return Path(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not a valid value") from None
    return raw
