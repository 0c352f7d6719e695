"""Sessions: routes, the manager, shell state, command logs and their followers."""
