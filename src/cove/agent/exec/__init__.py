"""Code run, stateless: `/process/execute`, `/process/code-run`, and the python zygote."""
