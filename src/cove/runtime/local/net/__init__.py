"""Sandbox egress: a root-made veth pair into a network namespace per sandbox.

The control plane makes each sandbox's namespace (`links`), owns every rule
about it in one nftables table of its own (`rules`), answers its DNS through
a policy resolver that opens the sandbox's allowed set for each answer's TTL
(`resolver`), and numbers its address pairs host-wide (`alloc`). `manager`
ties these to a sandbox's lifetime. The namespace belongs to the host's user
namespace, so nothing inside a sandbox (whose user namespace is bwrap's)
holds CAP_NET_ADMIN over it: its rules cannot be changed from inside.

Measured on this host (README, "Network"): ~9 ms to make and address a veth
pair and namespace, a few ms per nftables transaction; all of it happens
before the agent starts, so a warm-pool sandbox already has its network.
"""

from cove.runtime.local.net.manager import NetworkManager, available

__all__ = ["NetworkManager", "available"]
