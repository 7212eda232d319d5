"""Write a clickstream-shaped example dataset: what an e-commerce or media site exports.

Shaped like public clickstream dumps (RetailRocket's events.csv), since datasets cannot be
downloaded here: ``events.csv`` with ``timestamp`` (milliseconds since the epoch),
``visitorid``, ``event`` (``view``, ``addtocart``, ``transaction``), ``itemid`` and
``transactionid`` (set on purchases only); ``items.csv`` with ``itemid``, ``categoryid``,
``name`` and ``listed`` (a naive local time, ``YYYY-MM-DD HH:MM:SS``, Europe/Berlin). Some
rows are broken on purpose, as real exports are (``--broken`` of them): an unknown event
type, an unparseable timestamp.

Visitors have a few favourite categories and a taste for popular items; a view may lead to an
add-to-cart and that to a purchase. The events cover the ``--days`` before ``--end-date``
(default: today, UTC), like a fresh export. Deterministic per ``--seed`` and ``--end-date``.
Memory is bounded: events are written ``--chunk`` rows at a time.

    python examples/clickstream/make_clickstream.py --out clickstream
    python examples/clickstream/make_clickstream.py --out big --events 5000000 --items 50000
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

CATEGORIES = 40


def write_items(path: Path, items: int, start: dt.datetime, rng: np.random.Generator
                ) -> np.ndarray:
    """items.csv, listed in the year before ``start``; returns each item's category."""
    category = rng.integers(0, CATEGORIES, size=items)
    first = start.replace(tzinfo=None) - dt.timedelta(days=365)
    listed = [first + dt.timedelta(seconds=int(s))
              for s in rng.integers(0, 365 * 86_400, items)]
    table = pa.table({
        "itemid": np.arange(items).astype(str),
        "categoryid": np.char.add("c", category.astype(str)),
        "name": np.char.add("product ", np.arange(items).astype(str)),
        "listed": [t.strftime("%Y-%m-%d %H:%M:%S") for t in listed],
    })
    pcsv.write_csv(table, path)
    return category


def write_events(path: Path, events: int, visitors: int, category: np.ndarray,
                 start: dt.datetime, days: int, broken: int, chunk: int,
                 rng: np.random.Generator) -> None:
    items = len(category)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    rng.shuffle(popularity)
    by_category = [np.flatnonzero(category == c) for c in range(CATEGORIES)]
    weights = [popularity[ids] / popularity[ids].sum() for ids in by_category]
    favourites = rng.integers(0, CATEGORIES, size=(visitors, 3))
    start_ms = int(start.timestamp() * 1000)
    span_ms = days * 86_400_000
    written = 0
    options = pcsv.WriteOptions(include_header=True)
    with pcsv.CSVWriter(path, pa.schema([("timestamp", pa.string()), ("visitorid", pa.string()),
                                         ("event", pa.string()), ("itemid", pa.string()),
                                         ("transactionid", pa.string())]),
                        write_options=options) as writer:
        while written < events:
            n = min(chunk, events - written)
            visitor = rng.integers(0, visitors, size=n)
            taste = favourites[visitor, rng.integers(0, 3, size=n)]
            wander = rng.random(n) < 0.2
            taste[wander] = rng.integers(0, CATEGORIES, size=int(wander.sum()))
            item = np.empty(n, dtype=np.int64)
            for c in np.unique(taste):
                rows = np.flatnonzero(taste == c)
                item[rows] = rng.choice(by_category[c], size=len(rows), p=weights[c])
            kind = np.where(rng.random(n) < 0.08, "addtocart", "view").astype(object)
            bought = (kind == "addtocart") & (rng.random(n) < 0.35)
            kind[bought] = "transaction"
            stamp = np.sort(start_ms + (written + np.arange(n)) * (span_ms // events)
                            + rng.integers(0, max(1, span_ms // events), size=n))
            stamp_text = stamp.astype(str).astype(object)
            transaction = np.where(bought, np.char.add("t", (written + np.arange(n)).astype(
                str)), None)
            if broken and written == 0:
                bad = rng.choice(min(n, 5_000), size=min(broken, n, 5_000), replace=False)
                half = len(bad) // 2
                kind[bad[:half]] = "wishlist"
                stamp_text[bad[half:]] = "not-a-time"
            writer.write_table(pa.table({
                "timestamp": pa.array(stamp_text, pa.string()),
                "visitorid": pa.array(visitor.astype(str), pa.string()),
                "event": pa.array(kind, pa.string()),
                "itemid": pa.array(item.astype(str), pa.string()),
                "transactionid": pa.array(transaction, pa.string()),
            }))
            written += n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--visitors", type=int, default=5_000)
    parser.add_argument("--items", type=int, default=3_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--broken", type=int, default=20, help="broken event rows")
    parser.add_argument("--chunk", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-date", type=dt.date.fromisoformat, metavar="YYYY-MM-DD",
                        help="the day after the last event (default: today, UTC)")
    args = parser.parse_args(argv)
    for name in ("events", "visitors", "items", "days", "chunk"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    end = args.end_date or dt.datetime.now(dt.timezone.utc).date()
    start = dt.datetime.combine(end, dt.time(), dt.timezone.utc) - dt.timedelta(days=args.days)
    category = write_items(args.out / "items.csv", args.items, start, rng)
    write_events(args.out / "events.csv", args.events, args.visitors, category, start,
                 args.days, max(0, args.broken), args.chunk, rng)
    print(f"wrote {args.out / 'events.csv'} ({args.events:,} events) and "
          f"{args.out / 'items.csv'} ({args.items:,} items)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
