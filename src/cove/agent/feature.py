"""The one shape every agent feature has: built from the `Agent`, it adds its
routes to the router and ends what it started when the agent stops."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cove.agent.core import Agent
    from cove.agent.httpserver import Router


class Feature(Protocol):
    def __init__(self, agent: Agent) -> None: ...

    def register(self, router: Router) -> None:
        """Add this feature's routes."""

    async def aclose(self) -> None:
        """The agent stops (SIGTERM): end every process this feature started."""
