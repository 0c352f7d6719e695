"""`cove git clone SANDBOX URL [PATH]`: clone a repository inside a sandbox.

A password or token comes from the environment (`COVE_GIT_PASSWORD`), never
from the command line, where other users of the machine could read it in
the process list; like every credential given to a clone, the sandbox uses
it for this one git process and stores it nowhere.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath

from cove.cli.terminal import progress
from cove.sdk import Cove

PASSWORD_ENV = "COVE_GIT_PASSWORD"


def default_path(url: str) -> str:
    """Git's own choice: the URL's last segment without `.git` (`a/b.git` -> `b`)."""
    name = posixpath.basename(url.rstrip("/").removesuffix("/.git")).removesuffix(".git")
    return name.rpartition(":")[2] or "repo"


def git_clone_command(args: argparse.Namespace) -> int:
    with progress("starting Cove", enabled=not args.json):
        client = Cove(api_url=args.api_url, api_key=args.api_key, keep=True)
    sb = client.get(args.sandbox)
    path = args.path or default_path(args.url)
    password = os.environ.get(PASSWORD_ENV) or None
    with progress(f"cloning {args.url}", enabled=not args.json):
        sb.git.clone(args.url, path, branch=args.branch, commit_id=args.commit,
                     username=args.username, password=password, depth=args.depth)  # fmt: skip
        status = sb.git.status(path)
        head = sb.git.history(path)[0].hash
    if args.json:
        print(json.dumps({"path": path, "branch": status.current_branch, "commit": head}))
    else:
        where = "detached" if status.detached else status.current_branch
        print(f"cloned {args.url} into {sb.id}:{path} ({where} at {head[:12]})")
    return 0
