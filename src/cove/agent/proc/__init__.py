"""Processes: spawning into a cgroup, reaping, output pipes, PTYs.

- `spawn.py`: starts a user process into its cgroup and returns a `Child`.
- `child.py`: the `Child` (terminate with grace, kill the cgroup, signal, wait,
  pause/resume/drain output, stdin); sessions, exec, the interpreter and PTYs
  all hold one.
- `reaper.py`: reaps every child of the agent and resolves each exit future.
- `output.py`: reading stdout/stderr pipes into sinks, with the output cap.
- `terminal.py`: a pseudo-terminal's master side and the child on it.
- `cgroups.py`: one cgroup per command; "kill the command" = kill the cgroup.
- `harden.py`: what the agent does to its own process once at start.
"""
