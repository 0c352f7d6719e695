"""A python `code_run` whose `envs` change what an interpreter reads only at its
start (PYTHON*, LANG/LC_ALL/LC_CTYPE, HOME, TZ) is not forked from the zygote:
it gets a freshly started interpreter that sees them, as README says (values the
zygote started with are no change, and are forked)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_code_run_zygote import code_run, wait_forked

PROBE = """
import json, os, sys, time
print(json.dumps({
    "zygote": "zygote_worker.py" in open("/proc/self/cmdline").read(),
    "env": {k: os.environ.get(k) for k in ("LANG", "LC_ALL", "LC_CTYPE", "HOME", "TZ",
                                           "PYTHONIOENCODING", "OTHER")},
    "tzname": time.tzname[0],
    "stdout_encoding": sys.stdout.encoding,
    "usersite": __import__("site").getusersitepackages(),
}))
"""


@pytest.fixture(scope="module")
def sid(daytona: Any) -> Iterator[str]:
    sb = daytona.create()
    try:
        yield sb.id
    finally:
        daytona.delete(sb)


def _probe(api: httpx.Client, sid: str, envs: dict[str, str]) -> dict[str, Any]:
    import json

    body = code_run(api, sid, PROBE, envs=envs)
    assert body["exitCode"] == 0, body["stderr"]
    seen: dict[str, Any] = json.loads(body["stdout"])
    return seen


def test_a_plain_env_or_the_zygotes_own_values_are_forked(api: httpx.Client, sid: str) -> None:
    wait_forked(api, sid)
    seen = _probe(api, sid, {"OTHER": "x"})
    assert seen["zygote"] is True and seen["env"]["OTHER"] == "x"
    # Values the zygote itself started with change nothing: still forked.
    same = {k: v for k, v in seen["env"].items() if k in ("LANG", "HOME") and v}
    assert same, seen
    assert _probe(api, sid, same)["zygote"] is True


@pytest.mark.parametrize(
    ("envs", "check"),
    [
        ({"TZ": "EST+5"}, ("tzname", "EST")),
        ({"PYTHONIOENCODING": "latin-1"}, ("stdout_encoding", "iso8859-1")),
        ({"HOME": "/tmp/elsewhere"}, ("usersite", None)),
        ({"LANG": "C.utf8"}, None),
        ({"LC_ALL": "C.utf8"}, None),
        ({"LC_CTYPE": "C.utf8"}, None),
    ],
)
def test_start_time_envs_get_a_fresh_interpreter(
    api: httpx.Client, sid: str, envs: dict[str, str], check: tuple[str, str | None] | None
) -> None:
    wait_forked(api, sid)  # a zygote is there to be (wrongly) used
    seen = _probe(api, sid, envs)
    assert seen["zygote"] is False, seen
    ((name, value),) = envs.items()
    assert seen["env"][name] == value
    if check is not None:
        field, expected = check
        if field == "usersite":  # read from HOME when the interpreter starts
            assert seen["usersite"].startswith(value + "/"), seen
        else:
            assert seen[field] == expected, seen
