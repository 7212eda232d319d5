"""Import a MovieLens "latest"-format directory (ratings.csv, movies.csv) into the lake.

Mapping:
* every rating -> one ``rating`` event: ``event_id = ml-<userId>-<movieId>`` (MovieLens keeps one
  rating per user and movie, so the id is stable and re-imports add nothing), the rating value,
  and the rating's UNIX timestamp as UTC;
* every movie -> one item: title as given, ``category`` = the first listed genre, ``tags`` = all
  genres, ``created_at`` = 1 January of the release year in the title (null when absent);
  "(no genres listed)" gives no category and no tags;
* every user id of a ratings row whose fields parse -> a user row with only ``user_id``
  (MovieLens has no profiles: the other fields are the data gaps the system must cope with).

Rows with the wrong number of fields or unparseable ids, ratings or timestamps go to the
dead-letter file with their ``file:line``, as do records the schema rules reject.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.lake import Lake, WriteReport
from recsys.data.validation import Rejection
from recsys.errors import SchemaError, SourceError

RATINGS_HEADER = ["userId", "movieId", "rating", "timestamp"]
MOVIES_HEADER = ["movieId", "title", "genres"]
NO_GENRES = "(no genres listed)"
MAX_EPOCH_S = 253_402_300_799  # 9999-12-31T23:59:59Z
_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass
class ParsedCsv:
    """Rows with the right number of fields, their line numbers, and rows refused outright."""

    frame: pd.DataFrame
    lines: np.ndarray
    rejected: list[Rejection]


def read_csv_rows(path: Path, header: list[str]) -> ParsedCsv:
    """Read a CSV file of strings, checking the header and each row's field count."""
    if not path.is_file():
        raise SourceError(f"{path} not found; a MovieLens directory has ratings.csv and movies.csv")
    rows: list[list[str]] = []
    lines: list[int] = []
    rejected: list[Rejection] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, strict=True)
            found = next(reader, None)
            if found != header:
                raise SchemaError(f"{path.name}: header is {found}, expected {header}")
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    rejected.append(Rejection(-1, f"malformed CSV: {exc}", {},
                                              f"{path.name}:{reader.line_num}"))
                    continue
                if not row:
                    continue
                if len(row) != len(header):
                    rejected.append(Rejection(
                        -1, f"expected {len(header)} fields, found {len(row)}",
                        {"fields": row}, f"{path.name}:{reader.line_num}"))
                    continue
                rows.append(row)
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} is not valid UTF-8 ({exc})") from exc
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return ParsedCsv(frame, np.asarray(lines, dtype=np.int64), rejected)


def _parse_column(parsed: ParsedCsv, name: str, kind: str, source: str) -> tuple[
        pd.Series, np.ndarray]:
    """Parse one string column; returns values and a mask of rows that failed (recorded)."""
    text = parsed.frame[name].str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna().to_numpy()
    if kind == "int":
        whole = numbers.notna() & (numbers == np.floor(numbers.fillna(0)))
        bad |= ~whole.to_numpy()
        expected = "an integer"
    else:
        expected = "a number"
    for i in np.flatnonzero(bad):
        parsed.rejected.append(Rejection(
            -1, f"{name}: expected {expected}, got {parsed.frame[name].iloc[i]!r}",
            parsed.frame.iloc[i].to_dict(), f"{source}:{parsed.lines[i]}"))
    return numbers, bad


def _keep(parsed: ParsedCsv, bad: np.ndarray) -> None:
    parsed.frame = parsed.frame[~bad].reset_index(drop=True)
    parsed.lines = parsed.lines[~bad]


def ratings_to_events(path: Path) -> tuple[pd.DataFrame, np.ndarray, list[Rejection]]:
    parsed = read_csv_rows(path, RATINGS_HEADER)
    bad = np.zeros(len(parsed.frame), dtype=bool)
    values: dict[str, pd.Series] = {}
    for name, kind in [("userId", "int"), ("movieId", "int"), ("rating", "float"),
                       ("timestamp", "int")]:
        values[name], failed = _parse_column(parsed, name, kind, path.name)
        bad |= failed
    out_of_range = ~bad & ((values["timestamp"] < 0) | (values["timestamp"] > MAX_EPOCH_S)
                           ).to_numpy()
    for i in np.flatnonzero(out_of_range):
        parsed.rejected.append(Rejection(
            -1, f"timestamp: {parsed.frame['timestamp'].iloc[i]!r} is not a UNIX time between "
                "1970 and 9999", parsed.frame.iloc[i].to_dict(),
            f"{path.name}:{parsed.lines[i]}"))
    bad |= out_of_range
    keep = ~bad
    _keep(parsed, bad)
    user = values["userId"][keep].astype(np.int64).astype(str).reset_index(drop=True)
    movie = values["movieId"][keep].astype(np.int64).astype(str).reset_index(drop=True)
    seconds = values["timestamp"][keep].astype(np.int64).reset_index(drop=True)
    events = pd.DataFrame({
        "event_id": "ml-" + user + "-" + movie,
        "user_id": user,
        "item_id": movie,
        "event_type": "rating",
        "timestamp": pd.Series(seconds.to_numpy().astype("datetime64[s]")).dt.tz_localize("UTC"),
        "rating": values["rating"][keep].astype(np.float64).reset_index(drop=True),
    })
    return events, parsed.lines, parsed.rejected


def movies_to_items(path: Path) -> tuple[pd.DataFrame, np.ndarray, list[Rejection]]:
    parsed = read_csv_rows(path, MOVIES_HEADER)
    ids, bad = _parse_column(parsed, "movieId", "int", path.name)
    keep = ~bad
    _keep(parsed, bad)
    frame = parsed.frame
    genres = [[] if g.strip() in ("", NO_GENRES) else g.split("|") for g in frame["genres"]]
    years = frame["title"].str.extract(_YEAR, expand=False)
    created = [dt.datetime(int(y), 1, 1, tzinfo=dt.timezone.utc) if isinstance(y, str)
               and 1800 <= int(y) else None for y in years]
    items = pd.DataFrame({
        "item_id": ids[keep].astype(np.int64).astype(str).to_numpy(),
        "title": frame["title"].to_numpy(),
        "category": [g[0] if g else None for g in genres],
        "tags": genres,
        "created_at": pd.Series(created, dtype=object),
    })
    return items, parsed.lines, parsed.rejected


@dataclass
class MovieLensReport:
    items: WriteReport
    users: WriteReport
    events: WriteReport

    def summaries(self) -> list[str]:
        return [self.items.summary(), self.users.summary(), self.events.summary()]


def import_movielens(src: Path, lake: Lake, **write_options: Any) -> MovieLensReport:
    """Import ``src`` into ``lake`` (see the module docstring). Options go to the lake writes."""
    src = Path(src)
    if not src.is_dir():
        raise SourceError(f"--src {src} is not a directory; point it at an unpacked MovieLens "
                          "dataset such as ml-latest-small/")
    items, item_lines, item_rejects = movies_to_items(src / "movies.csv")
    events, event_lines, event_rejects = ratings_to_events(src / "ratings.csv")
    items_report = lake.write_items(items, str(src / "movies.csv"),
                                    prior_rejections=item_rejects,
                                    locate=lambda i: f"movies.csv:{item_lines[i]}",
                                    **write_options)
    events_report = lake.write_events(events, str(src / "ratings.csv"),
                                      prior_rejections=event_rejects,
                                      locate=lambda i: f"ratings.csv:{event_lines[i]}",
                                      **write_options)
    users = pd.DataFrame({"user_id": pd.unique(events["user_id"])})
    users_report = lake.write_users(users, str(src / "ratings.csv"), **write_options)
    return MovieLensReport(items_report, users_report, events_report)
