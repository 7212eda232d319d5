"""`recsys data ...`: generate, import and describe lakes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from recsys.data.describe import describe
from recsys.data.lake import Lake
from recsys.data.movielens import import_movielens
from recsys.data.synthetic import SyntheticConfig, generate
from workflows.cli.arguments import fraction, iso_date, non_negative_int, positive_int

log = logging.getLogger("recsys")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="create, import and inspect the event lake",
                                 description="Create, import and inspect the event lake.")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    gen = commands.add_parser(
        "generate", help="simulate a content platform into a lake",
        description="Simulate users, a growing catalogue and their sessions (impressions, clicks, "
                    "watches, likes, skips) into a lake. Deterministic per seed and --end-date; "
                    "rerunning into the same lake adds nothing.")
    gen.add_argument("--out", required=True, type=Path, metavar="LAKE", help="lake directory")
    defaults = SyntheticConfig()
    gen.add_argument("--users", type=positive_int, default=defaults.users, metavar="N")
    gen.add_argument("--items", type=positive_int, default=defaults.items, metavar="M")
    gen.add_argument("--days", type=positive_int, default=defaults.days, metavar="D")
    gen.add_argument("--seed", type=non_negative_int, default=defaults.seed, metavar="S")
    gen.add_argument("--end-date", type=iso_date, default=None, metavar="YYYY-MM-DD",
                     help="first day after the simulated window (default: today, UTC)")
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=run_generate)

    ml = commands.add_parser(
        "import-movielens", help="import a MovieLens ratings/movies directory",
        description="Import a MovieLens 'latest'-format directory: ratings become rating events, "
                    "movies become items (first genre = category, genres = tags). Importing the "
                    "same directory again adds nothing.")
    ml.add_argument("--src", required=True, type=Path, metavar="DIR")
    ml.add_argument("--out", required=True, type=Path, metavar="LAKE")
    ml.add_argument("--max-bad-fraction", type=fraction, default=0.05, metavar="F",
                    help="fail, writing nothing, if more than this share of a file's records is "
                         "invalid (default 0.05)")
    ml.set_defaults(func=run_import_movielens)

    add_import_parser(commands)

    desc = commands.add_parser("describe", help="summarise what a lake holds",
                               description="Print row counts, the event mix and the time range.")
    desc.add_argument("lake", type=Path, metavar="LAKE")
    desc.set_defaults(func=run_describe)


def add_import_parser(commands: argparse._SubParsersAction) -> None:
    from recsys.data.importing.mapping import TIMESTAMP_UNITS
    from recsys.data.importing.sources import FORMATS

    imp = commands.add_parser(
        "import", help="import event logs and catalogues of any shape (Parquet, CSV, JSON "
                       "lines, SQL)",
        description="Import event logs, items and users from Parquet, CSV or JSON-lines files "
                    "(paths, globs, or URLs fsspec opens) or a PostgreSQL query, streamed in "
                    "batches, mapping the source's columns and event types to the lake's with "
                    "--mapping FILE and/or the flags below (the flags win). Importing the same "
                    "sources again adds nothing.",
        epilog="Example: recsys data import --events 'clicks/*.csv' --items items.csv --out "
               "lake --column events.user_id=visitorid --column events.item_id=itemid "
               "--column events.timestamp=ts_ms --timestamp-unit ms --column "
               "events.event_type=event --event-type view=click --event-type addtocart=like "
               "--event-id-from visitorid,itemid,ts_ms,event")
    imp.add_argument("--events", nargs="+", default=[], metavar="PATH",
                     help="event files, globs or URLs")
    imp.add_argument("--items", nargs="+", default=[], metavar="PATH")
    imp.add_argument("--users", nargs="+", default=[], metavar="PATH")
    imp.add_argument("--events-sql", nargs=2, metavar=("DSN", "QUERY"),
                     help="events from a PostgreSQL query, e.g. postgresql://host/db "
                          "'SELECT * FROM clicks'")
    imp.add_argument("--out", required=True, type=Path, metavar="LAKE")
    imp.add_argument("--mapping", type=Path, metavar="FILE",
                     help="a YAML mapping: a section per table (docs/import.md)")
    imp.add_argument("--column", action="append", default=[], metavar="TABLE.FIELD=COLUMN",
                     help="fill a lake field from a source column, e.g. events.user_id=visitorid")
    imp.add_argument("--constant", action="append", default=[], metavar="TABLE.FIELD=VALUE",
                     help="a value for every row, e.g. events.device=desktop")
    imp.add_argument("--event-type", action="append", default=[], metavar="VALUE=TYPE",
                     help="map a source event type to a lake type, e.g. view=click")
    imp.add_argument("--drop-event-type", action="append", default=[], metavar="VALUE",
                     help="leave out events of this source type (counted)")
    imp.add_argument("--event-id-from", type=_columns, metavar="COLUMN,...",
                     help="build event ids from these source columns' values")
    imp.add_argument("--timestamp-unit", choices=TIMESTAMP_UNITS,
                     help="the events' time column: a number of s, ms, us or ns, or iso")
    imp.add_argument("--timestamp-format", metavar="FORMAT",
                     help="the events' time column in a strptime format, e.g. "
                          "'%%d/%%m/%%Y %%H:%%M'")
    imp.add_argument("--timezone", metavar="ZONE", help="read the events' naive times in this "
                                                        "IANA zone (default UTC)")
    imp.add_argument("--format", choices=FORMATS,
                     help="the sources' format (default: from each file's extension)")
    imp.add_argument("--csv-delimiter", default=",", type=_one_character, metavar="CHAR")
    imp.add_argument("--batch-rows", type=positive_int, default=100_000, metavar="N",
                     help="rows read, mapped and written at a time (default 100000)")
    imp.add_argument("--max-bad-fraction", type=fraction, default=0.05, metavar="F",
                     help="stop, without writing the batch that crosses it, when more than this "
                          "share of a table's records read so far is invalid (default 0.05)")
    imp.add_argument("--dry-run", action="store_true",
                     help="print the mapping, mapped examples and the first rejections; "
                          "write nothing")
    imp.add_argument("--dry-run-rows", type=positive_int, default=10_000, metavar="N",
                     help="records of each table a dry run reads (default 10000)")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(func=run_import)


def _columns(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected COLUMN,COLUMN,..., got {text!r}")
    return names


def _one_character(text: str) -> str:
    text = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"expected one character (or \\t), got {text!r}")
    return text


def run_generate(args: argparse.Namespace) -> int:
    cfg = SyntheticConfig(users=args.users, items=args.items, days=args.days, seed=args.seed,
                          end_date=args.end_date)
    report = generate(cfg, Lake(args.out, create=True), progress=not args.no_progress)
    print(report.users.summary())
    print(report.items.summary())
    print(f"events: received {report.events_received:,}, written {report.events_written:,} "
          f"in {report.seconds:.1f}s ({report.events_received / report.seconds:,.0f} events/s)")
    return 0


def run_import_movielens(args: argparse.Namespace) -> int:
    report = import_movielens(args.src, Lake(args.out, create=True),
                              max_bad_fraction=args.max_bad_fraction)
    for line in report.summaries():
        print(line)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from recsys.data.importing.importer import Sources, import_data
    from workflows.cli.import_flags import mapping_from_flags

    mapping = mapping_from_flags(args)
    sources = Sources(events=tuple(args.events), items=tuple(args.items),
                      users=tuple(args.users),
                      events_sql=tuple(args.events_sql) if args.events_sql else None,
                      format=args.format, csv_delimiter=args.csv_delimiter)
    if args.dry_run:
        from recsys.data.importing.dry_run import preview

        for table in preview(sources, mapping, rows=args.dry_run_rows,
                             batch_rows=args.batch_rows):
            for line in table.lines(shown=5):
                print(line)
        print("dry run: nothing was written")
        return 0
    report = import_data(Lake(args.out, create=True), sources, mapping,
                         batch_rows=args.batch_rows, max_bad_fraction=args.max_bad_fraction,
                         progress=not args.no_progress)
    for line in report.summaries():
        print(line)
    return 0


def run_describe(args: argparse.Namespace) -> int:
    for line in describe(Lake(args.lake)).lines():
        print(line)
    return 0
