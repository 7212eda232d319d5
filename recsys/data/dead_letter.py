"""Dead-letter files: one JSON line per rejected record, saying where it came from and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

from recsys.data.validation import Rejection

Locator = Callable[[int], str]


def write_dead_letter(
    path: Path,
    table: str,
    source: str,
    rejections: Iterable[Rejection],
    locate: Locator | None = None,
) -> int:
    """Append the rejections to ``path`` (JSON Lines) and return how many were written.

    Each line has ``table``, ``source``, ``location`` (``locate(row)`` or ``row N``), ``reason``
    and the raw ``record``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("a", encoding="utf-8") as out:
        for rej in rejections:
            line = {
                "table": table,
                "source": source,
                "location": rej.location or (locate(rej.row) if locate else f"row {rej.row}"),
                "reason": rej.reason,
                "record": rej.record,
            }
            out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            count += 1
    return count


def read_dead_letter(path: Path) -> list[dict]:
    """The entries of a dead-letter file, in the order they were written."""
    with path.open(encoding="utf-8") as src:
        return [json.loads(line) for line in src if line.strip()]
