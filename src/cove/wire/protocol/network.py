"""A sandbox's egress policy: the official SDK's fields, parsed and checked once.

Daytona sends lists as comma-separated strings (`networkAllowList`,
`domainAllowList`); Cove keeps them as strings on the wire and parses them
here into normalized entries, so the server, the SDK and the CLI refuse the
same malformed entry with the same message. A deny list and IPv6 CIDRs are
Cove's additions.

Precedence, applied by the runtime: the isolation rules (host, control
plane, other sandboxes, link-local, metadata) first, whatever the policy;
then `block_all`; then the deny list; then, if any allow list is set, only
allowed CIDRs and addresses that allowed names resolved to; else everything.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from cove.wire.errors import BadRequest
from cove.wire.model import WireModel

# Per list: enough for real allow lists, small enough that each sandbox's
# nftables sets stay cheap to rewrite on every update.
MAX_ENTRIES = 256
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _split(text: str | None) -> list[str]:
    if not text:
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def _limit(name: str, entries: list[str]) -> None:
    if len(entries) > MAX_ENTRIES:
        raise BadRequest(
            f"field '{name}' has {len(entries)} entries; at most {MAX_ENTRIES} are allowed"
        )


def parse_cidrs(name: str, text: str | None) -> list[str]:
    """Normalized CIDRs (`10.0.0.0/8`, `2001:db8::/32`); a bare address is a /32 or /128."""
    entries = _split(text)
    _limit(name, entries)
    out = []
    for entry in entries:
        if "%" in entry:  # `fe80::1%eth0`: Python keeps the scope, nft cannot read it (a 500)
            raise BadRequest(
                f"field '{name}': {entry!r} is not a CIDR (an IPv6 scope id has no meaning here)"
            )
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise BadRequest(f"field '{name}': {entry!r} is not a CIDR (e.g. 10.0.0.0/8)") from None
        out.append(str(net))
    return out


def parse_domains(name: str, text: str | None) -> list[str]:
    """Lower-cased domains; `*.example.com` allows every name under example.com."""
    entries = _split(text)
    _limit(name, entries)
    out = []
    for entry in entries:
        domain = entry.lower().rstrip(".")
        bare = domain[2:] if domain.startswith("*.") else domain
        labels = bare.split(".")
        if len(bare) > 253 or not all(_LABEL.match(x) for x in labels):
            raise BadRequest(
                f"field '{name}': {entry!r} is not a domain (e.g. pypi.org or *.github.com)"
            )
        out.append(domain)
    return out


def domain_allowed(name: str, domains: list[str]) -> bool:
    """Whether DNS name `name` is covered by `domains` (`*.x.y` covers x.y's subdomains only)."""
    name = name.lower().rstrip(".")
    for d in domains:
        if d.startswith("*."):
            if name.endswith(d[1:]):
                return True
        elif name == d:
            return True
    return False


@dataclass
class NetworkPolicy(WireModel):
    """A sandbox's egress policy, as asked for (stored with its record)."""

    network_block_all: bool = False
    network_allow_list: list[str] = field(default_factory=list)
    network_deny_list: list[str] = field(default_factory=list)
    domain_allow_list: list[str] = field(default_factory=list)
    outbound_proxy_url: str | None = None

    @property
    def restricted(self) -> bool:
        """Only listed destinations are allowed (an allow list is set)."""
        return bool(self.network_allow_list or self.domain_allow_list)

    @classmethod
    def parse(
        cls,
        *,
        block_all: bool | None = None,
        allow_list: str | None = None,
        deny_list: str | None = None,
        domain_allow_list: str | None = None,
        proxy_url: str | None = None,
    ) -> NetworkPolicy:
        """From the wire's strings; a BadRequest names the first bad entry."""
        if proxy_url is not None and not re.match(r"^(https?|socks5h?)://[^\s,]+$", proxy_url):
            raise BadRequest(
                f"field 'outboundProxyUrl': {proxy_url!r} is not a proxy URL "
                "(e.g. http://proxy.example:3128)"
            )
        return cls(
            network_block_all=bool(block_all),
            network_allow_list=parse_cidrs("networkAllowList", allow_list),
            network_deny_list=parse_cidrs("networkDenyList", deny_list),
            domain_allow_list=parse_domains("domainAllowList", domain_allow_list),
            outbound_proxy_url=proxy_url or None,
        )

    def updated(
        self,
        *,
        block_all: bool | None,
        allow_list: str | None,
        deny_list: str | None,
        domain_allow_list: str | None,
    ) -> NetworkPolicy:
        """This policy changed as Daytona's update call means it.

        `block_all=False` restores general access and clears the allow lists;
        an allow list given alone implies not blocking all; an empty string
        clears that list. The proxy URL is kept (the update call has none).
        """
        new = NetworkPolicy.parse(
            block_all=block_all,
            allow_list=allow_list,
            deny_list=deny_list,
            domain_allow_list=domain_allow_list,
            proxy_url=self.outbound_proxy_url,
        )
        if block_all is None:
            new.network_block_all = (
                False if (allow_list is not None or domain_allow_list is not None)
                else self.network_block_all
            )  # fmt: skip
        keep_lists = block_all is not False
        if allow_list is None and keep_lists:
            new.network_allow_list = self.network_allow_list
        if domain_allow_list is None and keep_lists:
            new.domain_allow_list = self.domain_allow_list
        if deny_list is None:
            new.network_deny_list = self.network_deny_list
        return new

    def proxy_env(self) -> dict[str, str]:
        """HTTP(S)_PROXY for the sandbox's processes: convenience routing, not a boundary."""
        url = self.outbound_proxy_url
        if not url:
            return {}
        no_proxy = "localhost,127.0.0.1,::1"
        return {
            "HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
            "NO_PROXY": no_proxy, "no_proxy": no_proxy,
        }  # fmt: skip


@dataclass
class NetworkSettings(NetworkPolicy):
    """`GET /api/sandbox/{id}/network-settings`: the policy and whether it is enforced.

    `egress` False: this server gives sandboxes loopback only (`note` says
    why), so the effective policy is block-all whatever was asked.
    """

    egress: bool = True
    note: str | None = None
