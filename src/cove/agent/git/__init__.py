"""Git in the sandbox: the official SDK's `sandbox.git` routes, run with the real `git`."""
