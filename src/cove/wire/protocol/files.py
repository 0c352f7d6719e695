"""Toolbox wire models: the file system (`/files/...`), in Daytona's shapes.

Paths in requests are relative to the sandbox's working directory or
absolute inside the sandbox. Transfers (`/files/bulk-upload`,
`/files/bulk-download`, `/files/download`) are multipart or raw byte streams,
not models; their parts are described in `cove.agent.files.transfer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cove.wire.model import WireModel


@dataclass
class FileInfo(WireModel):
    """One file system entry, as `ls -l` would show it."""

    name: str
    size: int
    is_dir: bool
    mode: str  # Go's FileMode string, e.g. "-rw-r--r--" or "drwxr-xr-x"
    permissions: str  # octal, e.g. "0644"
    owner: str
    group: str
    # Go's time.String() layout (Daytona's deprecated field); modifiedAt is RFC 3339.
    mod_time: str
    modified_at: str | None = None
    path: str | None = None  # the absolute path inside the sandbox
    # Cove: where a symbolic link points (the entry itself is not followed).
    symlink_target: str | None = None


@dataclass
class Match(WireModel):
    """A line of a file that holds the searched text (lines count from 1)."""

    file: str
    line: int
    content: str


@dataclass
class SearchFilesResponse(WireModel):
    files: list[str] = field(default_factory=list)


@dataclass
class ReplaceRequest(WireModel):
    """Replace every occurrence of the literal text `pattern` by `new_value`."""

    files: list[str]
    pattern: str
    new_value: str


@dataclass
class ReplaceResult(WireModel):
    file: str
    success: bool
    error: str | None = None


@dataclass
class FilesDownloadRequest(WireModel):
    paths: list[str]


@dataclass
class UploadedFile(WireModel):
    """One file a bulk upload wrote (Cove's answer; Daytona's SDK ignores the body)."""

    path: str
    size: int


@dataclass
class UploadFilesResponse(WireModel):
    files: list[UploadedFile] = field(default_factory=list)
