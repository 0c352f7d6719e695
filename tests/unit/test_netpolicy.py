"""Egress policy parsing and Daytona's update semantics; the resolver's DNS reading."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from cove.runtime.local.net import alloc, dnsmsg, rules
from cove.wire.errors import BadRequest
from cove.wire.protocol.network import MAX_ENTRIES, NetworkPolicy, domain_allowed


def test_lists_are_normalized() -> None:
    p = NetworkPolicy.parse(
        allow_list=" 10.1.2.3/8 , 1.2.3.4,2001:DB8::/32,",
        domain_allow_list="PyPI.org.,*.GitHub.com",
    )
    assert p.network_allow_list == ["10.0.0.0/8", "1.2.3.4/32", "2001:db8::/32"]
    assert p.domain_allow_list == ["pypi.org", "*.github.com"]
    assert p.restricted and not p.network_block_all


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allow_list": "10.0.0.0/33"}, "field 'networkAllowList': '10.0.0.0/33' is not a CIDR"),
        ({"deny_list": "1.2.3"}, "field 'networkDenyList': '1.2.3' is not a CIDR"),
        ({"domain_allow_list": "a..b"}, "field 'domainAllowList': 'a..b' is not a domain"),
        ({"domain_allow_list": "x.*.y"}, "'x.*.y' is not a domain"),
        ({"domain_allow_list": "a" * 64 + ".com"}, "is not a domain"),
        ({"proxy_url": "ftp://x"}, "field 'outboundProxyUrl': 'ftp://x'"),
        ({"allow_list": ",".join(["1.1.1.1"] * (MAX_ENTRIES + 1))}, f"at most {MAX_ENTRIES}"),
    ],
)
def test_bad_entries_are_named(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest) as info:
        NetworkPolicy.parse(**kwargs)
    assert message in info.value.message


def test_wildcards_cover_subdomains_only() -> None:
    domains = ["*.github.com", "pypi.org"]
    assert domain_allowed("api.github.com", domains)
    assert domain_allowed("a.b.github.com.", domains)
    assert not domain_allowed("github.com", domains)
    assert not domain_allowed("evilgithub.com", domains)
    assert domain_allowed("PYPI.org", domains)
    assert not domain_allowed("files.pypi.org", domains)


def test_updates_follow_daytona() -> None:
    base = NetworkPolicy.parse(allow_list="10.0.0.0/8", proxy_url="http://p:1")
    kw = {"block_all": None, "allow_list": None, "deny_list": None, "domain_allow_list": None}
    blocked = base.updated(**{**kw, "block_all": True})
    assert blocked.network_block_all and blocked.network_allow_list == ["10.0.0.0/8"]
    opened = blocked.updated(**{**kw, "block_all": False})
    assert not opened.network_block_all and opened.network_allow_list == []
    listed = blocked.updated(**{**kw, "domain_allow_list": "x.test"})
    assert not listed.network_block_all
    assert listed.network_allow_list == ["10.0.0.0/8"] and listed.domain_allow_list == ["x.test"]
    cleared = listed.updated(**{**kw, "allow_list": ""})
    assert cleared.network_allow_list == [] and cleared.domain_allow_list == ["x.test"]
    assert cleared.outbound_proxy_url == "http://p:1"


def _query(name: str, qtype: int = 1) -> bytes:
    q = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


def test_dns_question_answers_and_replies() -> None:
    query = _query("Pkg.Example.test")
    q = dnsmsg.question(query)
    assert (q.name, q.qtype, q.end) == ("pkg.example.test", 1, len(query))
    answer = bytearray(query)
    answer[2:4] = b"\x81\x80"
    answer[6:8] = b"\x00\x02"
    for addr, ttl in (("198.18.0.2", 30), ("198.18.0.3", 5)):
        answer += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + socket.inet_aton(addr)
    assert dnsmsg.a_records(bytes(answer)) == [("198.18.0.2", 30), ("198.18.0.3", 5)]
    refused = dnsmsg.reply(query, dnsmsg.RCODE_REFUSED)
    ident, flags, qd, an = struct.unpack_from("!HHHH", refused)
    assert (ident, flags & 0x800F, qd, an) == (0x1234, 0x8005, 1, 0)
    with pytest.raises(dnsmsg.DnsError):
        dnsmsg.question(b"\0" * 5)
    loop = bytearray(query[:12]) + b"\xc0\x0c"
    with pytest.raises(dnsmsg.DnsError):
        dnsmsg.question(bytes(loop))


def test_dns_answer_for_a_link_peer() -> None:
    query = _query("Owner-Web")
    answer = dnsmsg.answer_a(query, "100.72.0.6", 5)
    assert answer[:2] == query[:2]  # the query's id
    assert dnsmsg.question(answer).name == "owner-web"
    assert dnsmsg.a_records(answer) == [("100.72.0.6", 5)]


def test_only_allow_list_entries_inside_a_private_range_open_it() -> None:
    listed = ["0.0.0.0/0", "10.0.0.0/8", "10.1.2.3/32", "172.16.0.0/11", "192.168.7.0/24",
              "100.64.0.0/10", "198.18.0.0/15", "2001:db8::/32"]  # fmt: skip
    assert rules.private_allowed(listed) == [
        "10.0.0.0/8", "10.1.2.3/32", "192.168.7.0/24", "100.64.0.0/10"
    ]  # fmt: skip


def test_every_policy_refuses_private_ranges_after_its_deny_list_and_before_accepting() -> None:
    slot = alloc.Slot(5)
    for policy in (NetworkPolicy(), NetworkPolicy(network_allow_list=["0.0.0.0/0"]),
                   NetworkPolicy(domain_allow_list=["*.test"]),
                   NetworkPolicy(network_allow_list=["10.1.0.0/16", "198.18.0.0/15"],
                                 network_deny_list=["10.1.2.0/24"])):  # fmt: skip
        lines = rules._policy_script(slot, policy, flush_dns=False).splitlines()
        rule_lines = [x for x in lines if x.startswith("add rule")]
        refusals = [
            i for i, x in enumerate(rule_lines)
            if any(x.endswith(f"ip daddr {r} goto refuse") for r in rules.PRIVATE_V4)
        ]  # fmt: skip
        assert len(refusals) == 4 and refusals[-1] - refusals[0] == 3, rule_lines
        before = rule_lines[: refusals[0]]
        # Before them only the deny list and the allow list's private entries.
        opened = [x.split(" daddr ")[1].split()[0] for x in before if x.endswith(" accept")]
        assert opened == rules.private_allowed(policy.network_allow_list), rule_lines
        denied = [x.split(" daddr ")[1] for x in before if "daddr" in x and "goto refuse" in x]
        assert denied == [f"{c} goto refuse" for c in policy.network_deny_list], rule_lines


def test_overlapping_entries_are_merged() -> None:
    """One rule per range, overlapping ones merged (a named interval set refused them as
    "conflicting intervals")."""
    policy = NetworkPolicy(
        network_allow_list=["10.0.0.0/8", "10.1.2.3/32", "198.18.0.0/16", "198.18.1.0/24",
                            "2001:db8::/32", "2001:db8::1/128"],
        network_deny_list=["192.168.0.0/16", "192.168.1.1/32"],
    )  # fmt: skip
    script = rules._policy_script(alloc.Slot(5), policy, flush_dns=False)
    ranges = [x.split(" daddr ")[1] for x in script.splitlines() if " daddr " in x]
    assert ranges == [
        "192.168.0.0/16 goto refuse",  # the deny list
        "10.0.0.0/8 accept",  # the allow list's private entries
        *(f"{r} goto refuse" for r in sorted(rules.PRIVATE_V4, key=ipaddress.ip_network)),
        "10.0.0.0/8 accept", "198.18.0.0/16 accept", "2001:db8::/32 accept",  # the allow list
        "@sb5_dns4 accept",  # and the names it resolved
    ]  # fmt: skip
    assert "add set" not in script  # no per-sandbox interval set (see _policy_script)
