"""The agent: serves the toolbox API inside one sandbox (standard library only).

It runs on Debian's `/usr/bin/python3` with nothing installed, so it imports
only the standard library and `cove.wire`. Where things are:

- `app.py`: the entry point; builds the features in `EAGER` and serves them,
  importing each of `DEFERRED` on the first request under its path prefixes.
- `feature.py`: the one shape a feature has (`register(router)`, `aclose()`).
- `core.py`, `config.py`: the shared `Agent` state and its typed configuration.
- `httpserver.py`, `httpbody.py`: HTTP/1.1 and WebSocket on the agent's socket.
- `exec/`, `sessions/`, `interpreter/`, `pty/`: the process API's features.
- `files/`, `git/`, `ports/`, `environment.py`: the box around it.
- `proc/`: the one process abstraction (`Child`) every feature starts through.
- `scripts/`: code that runs inside user interpreters by path (imports no cove).
"""
