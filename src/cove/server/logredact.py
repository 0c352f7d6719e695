"""Bearer tokens kept out of the access log.

A preview's token can ride in a URL (`?token=`, the first visit of a
browser) and a signed preview URL's path carries its token in place of the
sandbox id: the access log would keep both in clear, next to the store that
keeps only their hashes (and Daytona's route to expire a signed URL has
its token in the path). This filter rewrites them before a record is
formatted.
"""

from __future__ import annotations

import logging
import re

_QUERY = re.compile(r"([?&][A-Za-z_]*token=)[^&\s\"]+", re.IGNORECASE)
_SIGNED = re.compile(r"(/preview/)[0-9a-f]{32}(?=/|\s|$|\?)")
_EXPIRE = re.compile(r"(/signed-preview-url/)[^/\s?]+")  # Daytona's expire route
REDACTED = "[redacted]"


def redact(text: str) -> str:
    # Nearly every line has none of them: three regex passes cost ~3% of the
    # server's CPU per exec, a substring check next to nothing.
    if (
        "token=" not in text.lower()
        and "/preview/" not in text
        and "/signed-preview-url/" not in text
    ):
        return text
    for pattern in (_QUERY, _SIGNED, _EXPIRE):
        text = pattern.sub(r"\g<1>" + REDACTED, text)
    return text


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """On uvicorn's access logger (call after uvicorn configured logging)."""
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
