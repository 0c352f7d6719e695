"""The unmodified official SDK building from local files, run as a child process.

Run by the S3 build-context tests under `tests.images.s3.trusting_sdk`, so
that its store client trusts the test CA. One JSON argument says what to
build; one JSON line on stdout says what came of it:

    {"api_url", "key", "action": "create" | "snapshot", "base", "name",
     "files": [[local, remote]], "dirs": [[local, remote]], "dockerfile": path}
    -> {"id": sandbox or snapshot id, "state": ..., "logs": [...]} or {"error": message}
"""

from __future__ import annotations

import json
import sys
from typing import Any


def build(spec: dict[str, Any]) -> dict[str, Any]:
    from daytona import (
        CreateSandboxFromImageParams,
        CreateSnapshotParams,
        Daytona,
        DaytonaConfig,
        DaytonaError,
        Image,
    )

    daytona = Daytona(DaytonaConfig(api_key=spec["key"], api_url=spec["api_url"]))
    if spec.get("dockerfile"):
        image = Image.from_dockerfile(spec["dockerfile"])
    else:
        image = Image.base(spec["base"])
        for local, remote in spec.get("files", []):
            image = image.add_local_file(local, remote)
        for local, remote in spec.get("dirs", []):
            image = image.add_local_dir(local, remote)
    logs: list[str] = []
    try:
        if spec["action"] == "snapshot":
            params = CreateSnapshotParams(name=spec["name"], image=image)
            snap = daytona.snapshot.create(params, on_logs=logs.append, timeout=600)
            return {"id": snap.id, "state": str(snap.state), "logs": logs}
        made = daytona.create(
            CreateSandboxFromImageParams(image=image),
            timeout=600,
            on_snapshot_create_logs=logs.append,
        )
        return {"id": made.id, "state": str(made.state), "logs": logs}
    except DaytonaError as err:
        return {"error": str(err), "logs": logs}


if __name__ == "__main__":
    print(json.dumps(build(json.loads(sys.argv[1]))), flush=True)
