"""Preview links: HTTP and WebSocket traffic to a port inside a sandbox, through its agent.

`address` reads which sandbox port a request is for (path or host form),
`access` decides whether it may go there (preview token, cookie, public flag,
signed URLs), `upstream` opens the agent's tunnel to the port and speaks HTTP
to the app over it, `front` is the ASGI side (plain and streamed HTTP), and
`wsfront` (one level up) takes the WebSocket upgrades. `routes` is the REST
API that hands the links out.
"""
