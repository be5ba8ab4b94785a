"""``lsr check DIR``: verify an index (checksums and structure); exit 1 when it is damaged."""

from __future__ import annotations

import os
from typing import Any

from lsr.cli.common import summary


def run(args: Any) -> int:
    from lsr.errors import LsrError
    from lsr.index.check import inspect_index

    if not os.path.isdir(args.index):
        what = (
            "not a directory (an index is a directory)"
            if os.path.exists(args.index)
            else "no such index directory"
        )
        raise LsrError(f"{args.index}: {what}")
    rep = inspect_index(args.index)
    for problem in rep.problems:
        print(f"{rep.path}: {problem}")
    for note in rep.notes:
        print(f"{rep.path}: note: {note}")
    if rep.problems:
        summary(
            f"{rep.path}: DAMAGED, {len(rep.problems)} problem{'s' if len(rep.problems) > 1 else ''} ({rep.summary})"
        )
        return 1
    summary(f"{rep.path}: OK ({rep.summary})")
    return 0
