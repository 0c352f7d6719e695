"""Scripts that run inside user interpreters, by path, under Debian's python.

They import nothing from `cove` (tests/unit/test_layout.py checks it): a user's
interpreter has only the standard library and the sandbox runtime on its path.
"""

import os

DIR = os.path.dirname(os.path.abspath(__file__))


def path(name: str) -> str:
    """The file of script `name` (e.g. "interp_worker.py"), to run with a python by path."""
    return os.path.join(DIR, name)
