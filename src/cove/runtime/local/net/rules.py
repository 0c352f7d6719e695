"""Cove's nftables table: isolation for every sandbox, and each sandbox's policy.

One table, `inet cove`, shared by every control plane on the host (each
sandbox's objects are named by its host-wide index). Nothing in it matches
a packet that neither comes from nor goes to a sandbox interface (`cv-*`),
except one guard: if Cove had to turn IPv4 forwarding on, forwarding that
involves no sandbox is dropped, as it was before.

Order in `from_sandbox`, so that no policy can undo isolation: IPv6 dropped
(it is off inside too); then the sandbox's link chain, which accepts only
traffic from its own address to the sandboxes it is linked with (owner and
followers, issue 22: each side lists the other, so replies pass too); then
other sandboxes, loopback, link-local (with the
metadata address 169.254.169.254), multicast and reserved ranges refused;
then established flows; then the sandbox's own chain (anti-spoofing, deny
list, block-all or allow lists). Traffic from a sandbox to the host itself
(`input`) is refused except DNS to the policy resolver on its own gateway. New
connections into a sandbox are dropped (previews go through the agent).

Private ranges (RFC 1918 and the 100.64/10 shared space) are where a host's
own network lives: they are refused under every policy unless an allow-list
entry lies inside one (`10.1.0.0/16` opens that; `0.0.0.0/0` does not open
10/8), and an address a resolved name points to never opens one (DNS
rebinding). Each sandbox may hold at most `CONN_LIMIT` tracked connections
through the host and `DNS_CONN_LIMIT` to its resolver (`ct count`, keyed by
its interface, which it cannot forge): a flood fills its own quota, not the
host's connection tracking table. And the sandboxes of one control plane
together hold at most its cap (`ensure_cap`; by default half the host's
`nf_conntrack_max`): many sandboxes at their quotas leave the host room for
its own connections. The cap is one `ct count` rule in a chain of the control
plane's own, which each of its sandboxes' interfaces jumps to (map `caps`)
for a new connection through the host or to its resolver.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import re
import subprocess
from collections.abc import Iterator

from cove.runtime.local.net.alloc import REGISTRY, SANDBOX_NET, Slot
from cove.wire.protocol.network import NetworkPolicy

log = logging.getLogger("cove.runtime.net")

TABLE = "inet cove"
IFACES = '"cv-*"'
FORWARD_SYSCTL = "/proc/sys/net/ipv4/ip_forward"
_FORWARD_MARK = REGISTRY / "forwarding-enabled-by-cove"

# Never reachable from a sandbox, whatever its policy says.
NEVER_V4 = (
    "0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
    str(SANDBOX_NET),
)  # fmt: skip

# Refused unless an allow-list entry lies inside one of them (see the module doc).
PRIVATE_V4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")

# Tracked connections per sandbox (UDP flows live 30 s after their last packet,
# closed TCP ones are not counted): 64 sandboxes at the limit fill a quarter of
# a default 262144-entry conntrack table. DNS has its own, smaller quota.
CONN_LIMIT = 1024
DNS_CONN_LIMIT = 512

_CONN_RULE = f"ct state new add @conns {{ iifname ct count over {CONN_LIMIT} }} goto refuse"
# A new connection of a sandbox, counted against its control plane's cap (`ensure_cap`).
_CAP_RULE = "ct state new iifname vmap @caps"
_DNS_CAP_RULE = f"iifname {IFACES} {_CAP_RULE}"
CONNTRACK_MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
_DNS_CONN_RULE = (
    f"iifname {IFACES} ct state new add @dns_conns {{ iifname ct count over {DNS_CONN_LIMIT} }}"
    " goto refuse"
)

# DNS to the sandbox's own gateway only: an address local to the interface the packet came
# in on. Another sandbox's resolver (whose policy may be laxer) is not for it.
_OWN_GATEWAY_RULE = f"iifname {IFACES} fib daddr . iif type != local goto refuse"

_BASE = f"""
table {TABLE} {{
  map sandboxes {{ type ifname : verdict; }}
  map links {{ type ifname : verdict; }}
  map caps {{ type ifname : verdict; }}
  set never4 {{ type ipv4_addr; flags interval; elements = {{ {", ".join(NEVER_V4)} }}; }}
  set conns {{ type ifname; flags dynamic; size 65535; }}
  set dns_conns {{ type ifname; flags dynamic; size 65535; }}
  chain refuse {{
    meta l4proto tcp reject with tcp reset
    reject with icmpx admin-prohibited
  }}
  chain from_sandbox {{
    {_CONN_RULE}
    {_CAP_RULE}
    meta nfproto ipv6 drop
    iifname vmap @links
    oifname {IFACES} goto refuse
    ip daddr @never4 goto refuse
    ct state established,related accept
    iifname vmap @sandboxes
    goto refuse
  }}
  chain to_sandbox {{
    ct state established,related accept
    drop
  }}
  chain forward_hook {{
    type filter hook forward priority filter - 1; policy accept;
    iifname {IFACES} jump from_sandbox
    oifname {IFACES} jump to_sandbox
  }}
  chain input_hook {{
    type filter hook input priority filter - 1; policy accept;
    {_DNS_CONN_RULE}
    {_DNS_CAP_RULE}
    {_OWN_GATEWAY_RULE}
    iifname {IFACES} ip daddr {SANDBOX_NET} meta l4proto {{ tcp, udp }} th dport 53 accept
    iifname {IFACES} goto refuse
  }}
  chain nat_hook {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {SANDBOX_NET} oifname != {IFACES} masquerade
  }}
}}
"""
_GUARD = f"add rule {TABLE} forward_hook iifname != {IFACES} oifname != {IFACES} drop\n"


def nft(script: str) -> None:
    done = subprocess.run(
        ["nft", "-f", "-"], input=script, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise OSError(f"nft: {done.stderr.strip()}")


def available() -> bool:
    return (
        subprocess.run(["nft", "list", "tables"], capture_output=True, check=False).returncode == 0
    )


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One control plane at a time sets up or tears down the shared table."""
    REGISTRY.mkdir(parents=True, exist_ok=True)
    with open(REGISTRY / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _table_exists() -> bool:
    # A map of every version of the table, listed alone: `list table` would dump
    # every sandbox's sets and their elements (about 100 ms with 250 sandboxes).
    return _has("map", "sandboxes")


def _has(kind: str, name: str) -> bool:
    cmd = ["nft", "list", kind, *TABLE.split(), name]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def _listed(chain: str) -> str:
    cmd = ["nft", "list", "chain", *TABLE.split(), chain]
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout


# This process has checked or made the table since it last removed it. Checking
# an existing table cost every create about 100 ms of the kernel's time, growing
# with the sandboxes on the host (each `nft list` of a chain or table dumps every
# set's elements), so a table checked once is only looked for after that.
_checked = False


def ensure_table() -> bool:
    """The shared table and IPv4 forwarding, once per host (idempotent); True if made now."""
    global _checked
    # `caps`, the newest object, stands for the whole current table. A table
    # cannot go while the caller holds a claim (`remove_table_if_unused`).
    if _checked and _has("map", "caps"):
        return False
    made = _ensure_table()
    _checked = True
    return made


def _ensure_table() -> bool:
    with _locked():
        if _table_exists():
            # Made by a control plane from before links, or before connection quotas.
            if not _has("map", "links"):
                nft(
                    f"add map {TABLE} links {{ type ifname : verdict; }}\n"
                    f"insert rule {TABLE} from_sandbox iifname vmap @links\n"
                )
            if not _has("set", "conns"):
                nft(
                    f"add set {TABLE} conns {{ type ifname; flags dynamic; size 65535; }}\n"
                    f"add set {TABLE} dns_conns {{ type ifname; flags dynamic; size 65535; }}\n"
                    f"insert rule {TABLE} from_sandbox {_CONN_RULE}\n"
                    f"insert rule {TABLE} input_hook {_DNS_CONN_RULE}\n"
                )
            if "fib daddr . iif" not in _listed("input_hook"):
                nft(f"insert rule {TABLE} input_hook {_OWN_GATEWAY_RULE}\n")
            if not _has("map", "caps"):  # made before the host-wide cap
                nft(
                    f"add map {TABLE} caps {{ type ifname : verdict; }}\n"
                    f"insert rule {TABLE} from_sandbox {_CAP_RULE}\n"
                    f"insert rule {TABLE} input_hook {_DNS_CAP_RULE}\n"
                )
            return False
        script = _BASE
        with open(FORWARD_SYSCTL) as f:
            enabled_by_us = f.read().strip() == "0" or _FORWARD_MARK.exists()
        if enabled_by_us:
            script += _GUARD
        nft(script)
        if enabled_by_us and not _FORWARD_MARK.exists():
            _FORWARD_MARK.touch()
            with open(FORWARD_SYSCTL, "w") as f:
                f.write("1")
        return True


# The cap when the table's size cannot be read: half of the kernel's usual default.
FALLBACK_CAP = 131072


def default_cap() -> int:
    """Half the host's conntrack table: the rest stays the host's own, whatever sandboxes do."""
    try:
        with open(CONNTRACK_MAX) as f:
            return max(int(f.read()) // 2, 1)
    except (OSError, ValueError) as exc:  # e.g. a container that hides the sysctl
        log.warning("%s unreadable (%s): capping sandboxes at %d", CONNTRACK_MAX, exc, FALLBACK_CAP)
        return FALLBACK_CAP


def cap_chain(instance: str) -> str:
    return f"cap_{instance}"


def ensure_cap(instance: str, cap: int) -> None:
    """The control plane's cap: its sandboxes together hold at most `cap` tracked connections.

    Left as it is if it already says `cap` (a restarted control plane keeps
    the count of the connections its sandboxes hold). A changed cap is a new
    rule, whose count starts from the connections made after it.
    """
    chain = f"{TABLE} {cap_chain(instance)}"
    rule = f"ct count over {cap} goto refuse"
    with _locked():
        if f"{rule}\n" in _listed(cap_chain(instance)):
            return
        nft(f"add chain {chain}\nflush chain {chain}\nadd rule {chain} {rule}\n")


def remove_cap(instance: str) -> None:
    """The control plane's cap chain, once none of its sandboxes is left to jump to it."""
    with _locked():
        if _table_exists() and _has("chain", cap_chain(instance)):
            nft(f"delete chain {TABLE} {cap_chain(instance)}\n")


def remove_table_if_unused() -> None:
    """The last sandbox of every control plane is gone: table and forwarding as before."""
    global _checked
    with _locked():
        if any(p.name.isdigit() for p in REGISTRY.iterdir()):
            return
        if _table_exists():
            nft(f"delete table {TABLE}\n")
        _checked = False
        if _FORWARD_MARK.exists():
            with open(FORWARD_SYSCTL, "w") as f:
                f.write("0")
            _FORWARD_MARK.unlink()


def _names(slot: Slot) -> dict[str, str]:
    n = slot.index
    return {
        "chain": f"sb{n}", "dns4": f"sb{n}_dns4",
        "link": f"sb{n}_link", "peers": f"sb{n}_peers",
    }  # fmt: skip


# Interval sets a sandbox had before its lists became rules (deleted with it).
_LEGACY_SETS = ("allow4", "allow6", "deny4", "deny6", "allowpriv4")
# Slots whose legacy sets were in the table when this process first looked:
# only a control plane older than this code makes them, and only sandboxes made
# before that look can have them. Looked up per delete, it was an `nft` run in
# every delete of every sandbox.
_legacy_slots: set[int] | None = None


def _take_legacy_sets(slot: Slot) -> bool:
    """Whether the sandbox on `slot` was attached by an older control plane (asked
    once); the caller deletes those sets, so a new sandbox on the slot has none."""
    global _legacy_slots
    if _legacy_slots is None:
        out = subprocess.run(
            ["nft", "--terse", "list", "sets", TABLE.split()[0]],  # names, no elements
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        _legacy_slots = {int(i) for i in re.findall(rf"\bset sb(\d+)_{_LEGACY_SETS[0]} ", out)}
    found = slot.index in _legacy_slots
    _legacy_slots.discard(slot.index)
    return found


def add_sandbox(slot: Slot, policy: NetworkPolicy, instance: str) -> None:
    """The sandbox's chain and sets, with `policy` in force and its control
    plane's (`instance`) cap counting it, in one transaction."""
    n = _names(slot)
    script = f"add chain {TABLE} {n['chain']}\n"
    script += f"add set {TABLE} {n['dns4']} {{ type ipv4_addr; flags timeout; }}\n"
    script += _policy_script(slot, policy, flush_dns=False)
    script += f'add element {TABLE} sandboxes {{ "{slot.host_if}" : jump {n["chain"]} }}\n'
    script += f"add set {TABLE} {n['peers']} {{ type ipv4_addr; }}\n"
    # Empty even over a leftover of this slot: the manager counts on it (no relink
    # writes the set of a sandbox that has no peers).
    script += f"flush set {TABLE} {n['peers']}\n"
    script += f"add chain {TABLE} {n['link']}\n"
    script += (
        f"add rule {TABLE} {n['link']} ip saddr {slot.address} ip daddr @{n['peers']} accept\n"
    )
    script += f'add element {TABLE} links {{ "{slot.host_if}" : jump {n["link"]} }}\n'
    script += _cap_element(slot, instance)
    nft(script)


def _cap_element(slot: Slot, instance: str) -> str:
    return f'add element {TABLE} caps {{ "{slot.host_if}" : jump {cap_chain(instance)} }}\n'


def count_in_cap(slot: Slot, instance: str) -> None:
    """A sandbox attached before the cap existed (found after a restart) counted in it."""
    nft(_cap_element(slot, instance))


def set_peers(groups: dict[Slot, list[Slot]]) -> None:
    """Each slot's link peers replaced by the given ones, in one transaction."""
    script = ""
    for slot, peers in groups.items():
        peers_set = f"{TABLE} {_names(slot)['peers']}"
        script += f"flush set {peers_set}\n"
        if peers:
            script += f"add element {peers_set} {{ {', '.join(p.address for p in peers)} }}\n"
    if script:
        nft(script)


def set_policy(slot: Slot, policy: NetworkPolicy, *, flush_dns: bool) -> None:
    """Replace the sandbox's policy atomically: the next connection sees the new one."""
    nft(_policy_script(slot, policy, flush_dns=flush_dns))


def _policy_script(slot: Slot, p: NetworkPolicy, *, flush_dns: bool) -> str:
    """The sandbox's chain, rewritten: its lists are rules, one per address range.

    Not interval sets: nft 1.0 reads the elements of every interval set on the
    host before it adds or deletes any element (the maps every create and
    delete updates), and the kernel finds each set by name in a list, so the
    sets made each create cost time growing with the square of the sandboxes
    on the host (1 s of the kernel's time per create and delete with 1,000).
    The chain is only walked for a flow's first packet, and a list holds at
    most 256 ranges.
    """
    n = _names(slot)
    chain = f"{TABLE} {n['chain']}"
    lines = [f"flush chain {chain}"]
    if flush_dns:
        lines.append(f"flush set {TABLE} {n['dns4']}")

    def each(cidrs: list[str], then: str) -> None:
        for cidr in _collapsed(cidrs):
            lines.append(f"add rule {chain} {'ip6' if ':' in cidr else 'ip'} daddr {cidr} {then}")

    lines.append(f"add rule {chain} ip saddr != {slot.address} drop")
    if p.network_block_all:
        lines.append(f"add rule {chain} goto refuse")
    else:
        each([c for c in p.network_deny_list if ":" not in c], "goto refuse")
        each([c for c in p.network_deny_list if ":" in c], "goto refuse")
        each(private_allowed(p.network_allow_list), "accept")
        each(list(PRIVATE_V4), "goto refuse")
        if p.restricted:
            each([c for c in p.network_allow_list if ":" not in c], "accept")
            each([c for c in p.network_allow_list if ":" in c], "accept")
            lines.append(f"add rule {chain} ip daddr @{n['dns4']} accept")
            lines.append(f"add rule {chain} goto refuse")
        else:
            lines.append(f"add rule {chain} accept")
    return "\n".join(lines) + "\n"


def _collapsed(cidrs: list[str]) -> list[str]:
    """Overlapping entries merged: nftables refuses an interval set given
    `10.0.0.0/8, 10.1.2.3/32` ("conflicting intervals")."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    return [str(x) for x in ipaddress.collapse_addresses(nets)]  # type: ignore[type-var]


def private_allowed(allow_list: list[str]) -> list[str]:
    """The allow-list entries that lie inside a private range: only these open one."""
    ranges = [ipaddress.IPv4Network(r) for r in PRIVATE_V4]
    out = []
    for entry in allow_list:
        if ":" in entry:
            continue
        net = ipaddress.IPv4Network(entry, strict=False)
        if any(net.subnet_of(r) for r in ranges):
            out.append(str(net))
    return out


def allow_resolved(slot: Slot, addresses: list[str], ttl: int) -> None:
    """Open `addresses` to the sandbox for `ttl` seconds (refreshing earlier answers)."""
    dns = f"{TABLE} {_names(slot)['dns4']}"
    script = ""
    for a in addresses:
        # add (a no-op if present), delete, add: the only way nft 1.0 renews a timeout.
        script += f"add element {dns} {{ {a} }}\ndelete element {dns} {{ {a} }}\n"
        script += f"add element {dns} {{ {a} timeout {ttl}s }}\n"
    if script:
        nft(script)


def remove_sandbox(slot: Slot) -> None:
    """Everything of the sandbox's out of the table; parts already gone are fine."""
    n = _names(slot)
    steps = [
        f'delete element {TABLE} sandboxes {{ "{slot.host_if}" }}',
        f'delete element {TABLE} links {{ "{slot.host_if}" }}',
        f'delete element {TABLE} caps {{ "{slot.host_if}" }}',
        f"delete chain {TABLE} {n['chain']}",
        f"delete chain {TABLE} {n['link']}",
    ]
    steps += [f"delete set {TABLE} {n[k]}" for k in ("dns4", "peers")]
    if _take_legacy_sets(slot):
        steps += [f"delete set {TABLE} sb{slot.index}_{k}" for k in _LEGACY_SETS]
    try:
        nft("\n".join(steps) + "\n")
    except OSError:  # some part is missing (a crash mid-create): each on its own
        for step in steps:
            with contextlib.suppress(OSError):
                nft(step + "\n")
