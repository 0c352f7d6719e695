"""Parsing what `git` prints into the wire answers: `status --porcelain=v2`
and the branch and remote listings. No I/O here, so it is tested on text."""

from __future__ import annotations

from cove.wire.protocol.git import FileStatus, GitRemote, GitStatus, ListBranchResponse

STATUS_ARGS = ["status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"]
BRANCH_ARGS = ["for-each-ref", "--format=%(HEAD)%(refname:short)", "refs/heads"]
REMOTE_ARGS = ["config", "-z", "--get-regexp", r"^remote\..*\.url$"]

# Porcelain's one-letter states, by Daytona's names.
_STATES = {
    ".": "Unmodified",
    "M": "Modified",
    "T": "Modified",  # type change (file <-> symlink)
    "A": "Added",
    "D": "Deleted",
    "R": "Renamed",
    "C": "Copied",
    "U": "Updated but unmerged",
}


def parse_status(text: str) -> GitStatus:
    status = GitStatus(current_branch="", file_status=[])
    records = text.split("\0")
    i = 0
    while i < len(records):
        record = records[i]
        i += 1
        if record.startswith("# "):
            _branch_header(status, record[2:])
        elif record.startswith("1 "):
            fields = record.split(" ", 8)
            status.file_status.append(_entry(fields[1], fields[8]))
        elif record.startswith("2 "):
            # A rename or copy: the next record is the path it came from.
            fields = record.split(" ", 9)
            source = records[i] if i < len(records) else ""
            i += 1
            status.file_status.append(_entry(fields[1], fields[9], source))
        elif record.startswith("u "):
            fields = record.split(" ", 10)
            status.file_status.append(_entry(fields[1], fields[10]))
        elif record.startswith("? "):
            status.file_status.append(FileStatus(record[2:], "Untracked", "Untracked"))
    return status


def _entry(xy: str, name: str, extra: str = "") -> FileStatus:
    return FileStatus(name, _STATES.get(xy[0], "Modified"), _STATES.get(xy[1], "Modified"), extra)


def _branch_header(status: GitStatus, header: str) -> None:
    key, _, value = header.partition(" ")
    if key == "branch.head":
        status.detached = value == "(detached)"
        status.current_branch = "" if status.detached else value
    elif key == "branch.upstream":
        status.upstream = value
        status.branch_published = True
    elif key == "branch.ab":
        ahead, _, behind = value.partition(" ")
        status.ahead, status.behind = int(ahead), -int(behind)


def parse_branches(text: str) -> ListBranchResponse:
    branches, current = [], ""
    for line in text.splitlines():
        marker, name = line[:1], line[1:]
        if not name:
            continue
        branches.append(name)
        if marker == "*":
            current = name
    return ListBranchResponse(branches, current)


def parse_remotes(text: str) -> list[GitRemote]:
    """`git config -z --get-regexp`: "remote.NAME.url\\nURL" records (names may hold dots)."""
    remotes = []
    for record in text.split("\0"):
        key, _, url = record.partition("\n")
        if key.startswith("remote.") and key.endswith(".url"):
            remotes.append(GitRemote(key[len("remote.") : -len(".url")], url))
    return remotes
