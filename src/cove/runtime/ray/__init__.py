"""The `ray` backend: sandboxes on the nodes of a Ray cluster, one API in front.

    backend   RayBackend: the runtime contract; placement through placement groups
    cluster   the control plane's view of Ray: nodes, actors' names, reservations
    node      NodeActor: one per node, runs sandboxes with the local backend's code
    relay     the node's authenticated TCP relay to its agents' sockets

Imported only when `--backend ray` is chosen: `ray` is an optional extra
(`pip install 'cove[ray]'`), and neither the local backend nor the SDK needs it.
See docs/scale-out.md.
"""

from cove.runtime.ray.backend import RayBackend

__all__ = ["RayBackend"]
