"""The control plane: Daytona-compatible REST, the toolbox proxy, auth and the store."""
