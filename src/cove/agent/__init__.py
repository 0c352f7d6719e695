"""The agent: serves the toolbox API inside one sandbox (standard library only)."""
