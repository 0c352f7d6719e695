"""`cove build`, `cove images` and `cove images prune`: the Cove SDK's image calls."""

from __future__ import annotations

import argparse
import sys

from cove.cli.commands import _client, _print_json


def build_command(args: argparse.Namespace) -> int:
    def show(line: str) -> None:
        print(line, flush=True)

    with _client(args) as c:
        image = c.images.build(args.context, args.file, args.tag, on_log=show)
    if args.json:
        _print_json({"id": image.id, "tag": image.tag, "size": image.size})
    else:
        print(f"built {image.id[:12]}" + (f" as {image.tag}" if image.tag else ""))
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def images_command(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.action == "prune":
            result = c.images.prune(everything=args.all)
            print(
                f"removed {len(result['removedImages'])} images, {result['removedLayers']} layers, "
                f"{_size(result['freedBytes'])}"
            )
            return 0
        items = c.images.list()
    if args.json:
        _print_json([vars(i) for i in items])
        return 0
    print(f"{'IMAGE':14}{'TAGS':32}{'SIZE':>10}  {'LAST USED':22}IN USE")
    for i in items:
        tags = ",".join(i.tags) or "-"
        print(f"{i.id[:12]:14}{tags[:31]:32}{_size(i.size):>10}  {i.last_used_at:22}"
              f"{'yes' if i.in_use else ''}")  # fmt: skip
    sys.stdout.flush()
    return 0
