"""Every rich result kind README lists comes back from the interpreter, each from
its `_repr_*_` method: jpeg (base64), svg, markdown, latex and json, besides
`text/plain`; a method that raises or returns None adds nothing, and one that
raises says so on stderr (as IPython does) rather than failing silently."""

from __future__ import annotations

import base64
import json

from cove.sdk import Sandbox

CODE = """
class Every:
    def _repr_jpeg_(self):
        return b"\\xff\\xd8\\xff\\xe0 not really a jpeg"
    def _repr_svg_(self):
        return "<svg xmlns='http://www.w3.org/2000/svg'><circle r='1'/></svg>"
    def _repr_markdown_(self):
        return "**bold**", {"isolated": True}
    def _repr_latex_(self):
        return r"$x^2$"
    def _repr_json_(self):
        return {"a": [1, 2]}
    def _repr_html_(self):
        raise ValueError("no html today")
    def _repr_png_(self):
        return None
    def __repr__(self):
        return "Every()"

display(Every())
Every()
"""


def test_every_rich_kind_comes_back(csb: Sandbox) -> None:
    result = csb.code_interpreter.run_code(CODE)
    assert result.error is None, result.error
    shown, main = result.results
    assert (shown.is_main_result, main.is_main_result) == (False, True)
    for r in (shown, main):
        data = r.data
        assert set(data) == {
            "text/plain",
            "image/jpeg",
            "image/svg+xml",
            "text/markdown",
            "text/latex",
            "application/json",
        }, data
        assert data["text/plain"] == "Every()"
        assert base64.b64decode(data["image/jpeg"]) == b"\xff\xd8\xff\xe0 not really a jpeg"
        assert data["image/svg+xml"].startswith("<svg") and "circle" in data["image/svg+xml"]
        assert data["text/markdown"] == "**bold**"  # (data, metadata) gives the data
        assert data["text/latex"] == "$x^2$"
        assert json.loads(data["application/json"]) == {"a": [1, 2]}
    # Both results (display() and the trailing expression) tried _repr_html_.
    assert result.stderr.count("Every._repr_html_() failed: ValueError('no html today')") == 2
