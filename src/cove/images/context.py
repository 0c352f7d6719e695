"""A build context on the host: tars unpacked safely into one directory.

Both ways a context arrives end here: the tar a Cove SDK or `cove build`
sends in the request body, and the tars the official SDK uploads to an
S3-compatible store (one per `add_local_file`/`add_local_dir`/COPY source,
all unpacked into the same tree as Daytona's builder merges them). tarfile's
"data" filter refuses absolute paths, `..`, links out of the tree and device
files; the bounds below refuse a small tar that unpacks to a full disk.
"""

from __future__ import annotations

import contextlib
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

from cove.images.store import IMAGE_UID
from cove.wire.errors import BadRequest, PayloadTooLarge

CONTEXT_LIMIT = 2 << 30  # bytes of tar a build context may send, and may unpack to
CONTEXT_ENTRIES = 200_000  # files, directories and links a build context may hold


def unpack_context(tars: Sequence[Path], dest: Path) -> None:
    """Unpack `tars` (in order, later ones over earlier) into `dest`, owned for images.

    Blocking: run it in a thread. Every tar's members are counted before any is
    unpacked, so a context over the bounds leaves nothing behind."""
    try:
        with contextlib.ExitStack() as stack:
            opened = [stack.enter_context(tarfile.open(path)) for path in tars]
            members = [m for tar in opened for m in tar.getmembers()]
            if len(members) > CONTEXT_ENTRIES:
                raise BadRequest(f"the build context has more than {CONTEXT_ENTRIES} entries")
            total = sum(m.size for m in members if m.isfile())
            if total > CONTEXT_LIMIT:
                raise PayloadTooLarge(
                    f"the build context unpacks to {total} bytes; "
                    f"at most {CONTEXT_LIMIT} are allowed"
                )
            for tar in opened:
                tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise BadRequest(f"the build context is not a usable tar: {exc}") from None
    # Owned like image files: root's in the build sandbox that copies them.
    subprocess.run(["chown", "-hR", f"{IMAGE_UID}:{IMAGE_UID}", str(dest)], check=True)
