"""The object store settings and checks that need no store: the default install
(no `cove[s3]`) must create sandboxes as before, and bad hashes are named."""

from __future__ import annotations

import asyncio
import sys

import pytest

from cove.server.object_storage import ContextStore, organization_id
from cove.settings import Settings
from cove.wire.errors import BadRequest


def test_without_the_s3_extra_a_create_without_contexts_needs_no_obstore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "obstore" or m.startswith("obstore.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "obstore", None)  # `import obstore` raises ImportError
    contexts = ContextStore(Settings())
    assert contexts.hashes(None) == [] and contexts.hashes([]) == []
    asyncio.run(contexts.check("owner", []))  # what every create runs
    with pytest.raises(ValueError, match=r"cove\[s3\]"):
        ContextStore(Settings(object_storage_url="https://store.invalid"))


@pytest.mark.parametrize(
    "value", ["0" * 32, [1], ["xyz"], ["A" * 32], ["0" * 31], ["../" + "0" * 29], {"a": 1}]
)
def test_context_hashes_must_be_md5_hex(value: object) -> None:
    contexts = ContextStore(Settings(object_storage_url="https://store.invalid"))
    with pytest.raises(BadRequest, match="32-character hex md5"):
        contexts.hashes(value)
    assert contexts.hashes(["0" * 32, "0" * 32]) == ["0" * 32]


def test_organization_ids_differ_per_key_and_hide_it() -> None:
    a, b = organization_id("hash-of-key-a"), organization_id("hash-of-key-b")
    assert a != b and len(a) == 32 and "hash-of-key" not in a
    assert a == organization_id("hash-of-key-a")  # stable: the SDK's HEAD finds its uploads
