"""Whether text from a peer is a plain decimal number, before `int` reads it.

`str.isdigit` also takes '²' or '³', which `int` refuses: a check with it let
'³' through to `int` and answered 500 (the fuzzer's port). Standard library
only: the agent imports this inside sandboxes.
"""

from __future__ import annotations


def is_number(text: str) -> bool:
    """ASCII digits only, at least one."""
    return text.isascii() and text.isdigit()
