"""The options every recsys Beam job that reads the lake shares (Beam style: underscores).

Beam registers every ``PipelineOptions`` class in one parser, so an option may be defined
once only: the feature build and the outcome join both read these.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs.postgres_io import EventLogSource
from recsys.errors import ConfigError

DEFAULT_WINDOW_S = 1800.0


class AnswerWindowOptions(PipelineOptions):
    """Which answers a job reads and how long after one an event still counts for it (the
    outcome join and off-policy evaluation)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--attribution_window_s", type=float, default=DEFAULT_WINDOW_S,
                            help="an event counts for an answer shown at most this long "
                                 "before it")
        parser.add_argument("--start", help="ISO time: only answers shown from then on "
                                            "count (default: all)")
        parser.add_argument("--end", help="ISO time the data is taken to end at (the outcome "
                                          "join; default: the latest exposure or event), or "
                                          "answers shown before it (OPE; default: all)")


class LakeJobOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        # Not required=True: Beam parses every registered options class for every pipeline.
        parser.add_argument("--lake", help="the recsys lake to read (required)")
        parser.add_argument("--output", help="directory for the outputs (required)")
        parser.add_argument("--event_log_dsn",
                            help="also read the PostgreSQL event log at this libpq DSN "
                                 "(with --event_log_schema); no password: libpq reads it "
                                 "from PGPASSWORD or PGPASSFILE where the pipeline runs")
        parser.add_argument("--event_log_dsn_env", metavar="VAR",
                            help="or: the environment variable holding the event log's DSN "
                                 "(which may hold a password), read where the pipeline runs")
        parser.add_argument("--event_log_schema",
                            help="the schema of the event log's tables")


def lake_and_output(options: PipelineOptions) -> tuple[Path, Path]:
    """``--lake`` (checked to be a lake) and ``--output``; raises ConfigError naming a bad
    option."""
    opts = options.view_as(LakeJobOptions)
    for name in ("lake", "output"):
        if not getattr(opts, name):
            raise ConfigError(f"--{name} is required")
    lake = Path(opts.lake)
    if not (lake / "_lake.json").exists():
        raise ConfigError(f"--lake {lake} is not a recsys lake (no _lake.json)")
    return lake, Path(opts.output)


def event_log_from_options(options: PipelineOptions) -> EventLogSource | None:
    """The event log to read besides the lake, or None; raises ConfigError naming a bad
    option."""
    opts = options.view_as(LakeJobOptions)
    dsn, dsn_env, schema = opts.event_log_dsn, opts.event_log_dsn_env, opts.event_log_schema
    if dsn is None and dsn_env is None and schema is None:
        return None
    if (dsn is None and dsn_env is None) or schema is None:
        given, missing = (("--event_log_dsn", "--event_log_schema") if schema is None
                          else ("--event_log_schema", "--event_log_dsn"))
        if schema is None and dsn is None:
            given = "--event_log_dsn_env"
        raise ConfigError(f"{given} needs {missing}: give both to read the PostgreSQL event "
                          "log, or neither")
    return EventLogSource(dsn, schema, dsn_env)



def time_option(name: str, text: str | None) -> int | None:
    """An ISO time flag as Unix microseconds (None when not given); ConfigError naming
    ``--name`` for a bad or zone-less time."""
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--{name}: not an ISO time: {text!r}") from None
    if when.tzinfo is None:
        raise ConfigError(f"--{name} {text!r} has no time zone (add Z or +00:00)")
    return int(when.timestamp() * 1_000_000)


__all__ = ["LakeJobOptions", "AnswerWindowOptions", "DEFAULT_WINDOW_S", "lake_and_output",
           "event_log_from_options", "time_option"]
