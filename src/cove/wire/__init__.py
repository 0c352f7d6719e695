"""What the agent, the server and the SDK all speak: standard library only.

The agent runs on Debian's python with nothing installed, so nothing here may
import a third-party package (tests/unit/test_layout.py enforces it): the error
tree, the wire-model base, the protocol models, the WebSocket codec and the
HTTP/1.1 head parser.
"""
