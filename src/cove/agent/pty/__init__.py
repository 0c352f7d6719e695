"""PTY sessions: interactive shells over WebSocket (wire page §4.4).

Each PTY is a shell started as a session leader with a new pseudo-terminal
as its controlling tty, in its own cgroup (`proc.spawn.Spawner.spawn_pty`).
The agent reads the master side and fans the output out to every connected
client (several clients may share one PTY); any client's input goes to the
shell. A client that connects late first gets the last `SCROLLBACK` bytes.
When the shell exits, every client gets
`{"type":"control","status":"exited","exitCode":N}` and a close 1000, and the
PTY is forgotten. Deleting a PTY (or stopping the agent) ends it like a
session: SIGTERM to everything it started, `KILL_GRACE`, then SIGKILL.

Rooms: `session` (one PTY: its child, scrollback and clients), `routes`
(the endpoints below).

Endpoints (relative to the toolbox root):
  WS     /process/pty/create-connect?id=&cols=&rows=[&cwd=]   create and attach; envs come in
         the `X-Daytona-Pty-Envs~<base64url JSON>` subprotocol token
  WS     /process/pty/{id}/connect        attach to a running PTY
  POST   /process/pty                     {"id", "cwd"?, "envs"?, "cols"?, "rows"?,
                                          "lazyStart"?} → 201 (lazy: starts on first connect)
  GET    /process/pty                     {"sessions": [PtySessionInfo]}
  GET    /process/pty/{id}                PtySessionInfo
  POST   /process/pty/{id}/resize         {"cols", "rows"} (1..1000) → PtySessionInfo
  DELETE /process/pty/{id}                ends the shell and all it started → 200 {"message"}
Errors after the upgrade (unknown id, duplicate id) are sent as
`{"type":"control","status":"error","error":...}`, then a close 4000+HTTP status.
"""
