"""Previews: a byte tunnel from the control plane to a port inside the sandbox."""
