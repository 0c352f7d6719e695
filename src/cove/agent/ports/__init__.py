"""Ports: what listens inside the sandbox, read from its own `/proc/net`."""
