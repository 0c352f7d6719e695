"""The stateful interpreter: routes, contexts, and the link to each worker process."""
