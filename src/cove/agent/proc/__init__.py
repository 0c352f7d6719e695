"""Processes: spawning into a cgroup, reaping, output pipes, PTYs."""
