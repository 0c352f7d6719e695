"""The file system, inside the sandbox as its user: `/files/...` (list, info, search,
replace, move, permissions, delete) and streamed uploads and downloads."""
