"""The outcome join: what the service showed (the lake's ``exposures``) joined with what each
user did afterwards (``events``), per answer and per (experiment, arm, user).

    python -m beam_jobs.outcomes --lake LAKE --output OUT [--attribution_window_s 1800]
        [--start 2026-12-01T00:00:00Z] [--end 2026-12-03T00:00:00Z]
        [--event_log_dsn DSN --event_log_schema SCHEMA] [--runner DirectRunner ...]

Outputs (Parquet; schemas in ``recsys/experiments/outcome_tables.py``)::

    OUT/request_outcomes/  OUT/user_outcomes/  OUT/_dead_letter/  OUT/_run.json

The attribution rules are in ``beam_jobs/attribution.py``. Exposures are read once per
``exposure_id`` and events once per ``event_id`` (over the lake and, with ``--event_log_*``,
the production profile's PostgreSQL log); each user's exposures and events meet in one
``CoGroupByKey``, so the job runs on any Beam runner. Only answers shown from ``--start`` on
count (an experiment's start: earlier answers are left out). ``--end`` is where the data is
taken to end (day-N returns after it are null); by default the latest exposure or event. A
run writes to a staging directory and replaces ``OUT`` only when it succeeded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs.attribution import user_outcomes
from beam_jobs.lake_io import DEAD_LETTER, NAMESPACE, OnePerKey, ReadParquetRows, read_events
from beam_jobs.options import (
    DEFAULT_WINDOW_S,
    AnswerWindowOptions,
    event_log_from_options,
    lake_and_output,
    time_option,
)
from beam_jobs.pipeline import WriteTable, beam_counters
from beam_jobs.postgres_io import EventLogSource, ReadEventLogBatches, ReadEventLogTable
from recsys.data.schemas import EVENTS, EXPOSURES
from recsys.errors import ConfigError
from recsys.experiments.outcome_tables import REQUEST_OUTCOMES, USER_OUTCOMES

log = logging.getLogger(__name__)


# the job's options (--attribution_window_s, --start, --end) are shared with off-policy
# evaluation: one class, since Beam parses every registered options class together
OutcomeJobOptions = AnswerWindowOptions


@dataclass(frozen=True)
class OutcomeJob:
    lake: Path
    output: Path
    window_s: float
    end_us: int | None
    event_log: EventLogSource | None
    start_us: int | None = None


def job_from_options(options: PipelineOptions) -> OutcomeJob:
    """The checked job; raises ConfigError naming a bad option."""
    opts = options.view_as(OutcomeJobOptions)
    lake, output = lake_and_output(options)
    if not opts.attribution_window_s > 0:
        raise ConfigError(f"--attribution_window_s must be positive, got "
                          f"{opts.attribution_window_s}")
    start_us, end_us = (time_option(name, getattr(opts, name)) for name in ("start", "end"))
    event_log = event_log_from_options(options)
    return OutcomeJob(lake, output, opts.attribution_window_s, end_us, event_log, start_us)


def _exposure_row(row: dict) -> dict:
    return {k: row.get(k) for k in ("request_id", "timestamp", "user_id", "item_id", "position",
                                     "experiments", "holdout", "tier", "device", "country",
                                     "language", "team", "retrieval_version")}


class JoinUser(beam.DoFn):
    def __init__(self, window_s: float):
        self.window_s = window_s
        self.users = beam.metrics.Metrics.counter(NAMESPACE, "outcome_users")
        self.attributed = beam.metrics.Metrics.counter(NAMESPACE, "outcomes_attributed")

    def process(self, keyed, horizon_us: int):
        user_id, grouped = keyed
        exposures, events = list(grouped["exposures"]), list(grouped["events"])
        if not exposures:
            return
        self.users.inc()
        requests, users, attributed = user_outcomes(user_id, exposures, events, self.window_s,
                                                    horizon_us)
        self.attributed.inc(attributed)
        yield from requests
        for row in users:
            yield beam.pvalue.TaggedOutput("users", row)


def _to_micros(row: dict) -> dict:
    ts = row["timestamp"]
    if isinstance(ts, dt.datetime):  # from PostgreSQL
        row = {**row, "timestamp": int(ts.timestamp() * 1_000_000)}
    return row


def join(p: beam.Pipeline, job: OutcomeJob) -> None:
    """Add the outcome join to ``p`` (see the module docstring)."""
    exposure_rows = p | "ReadExposures" >> ReadParquetRows(
        str(job.lake / EXPOSURES.name / "*" / "part-*.parquet"))
    logged_events = None
    if job.event_log is not None:
        logged = (p | "ReadLoggedExposures" >> ReadEventLogTable(job.event_log, EXPOSURES)
                  | "LoggedExposureTimes" >> beam.Map(_to_micros))
        exposure_rows = (exposure_rows, logged) | "UnionExposures" >> beam.Flatten()
        logged_events = p | "ReadLoggedEvents" >> ReadEventLogBatches(job.event_log, EVENTS)
    if job.start_us is not None:
        start_us = job.start_us
        exposure_rows = exposure_rows | "FromStart" >> beam.Filter(
            lambda r: r["timestamp"] is not None and r["timestamp"] >= start_us)
    exposures = (exposure_rows
                 | "OnePerExposure" >> OnePerKey("exposure_id")
                 | "Slim" >> beam.Map(_exposure_row))
    events = read_events(p, job.lake, logged_events)
    if job.end_us is not None:
        horizon = p | "End" >> beam.Create([job.end_us])
    else:
        times = ((exposures | "ExposureTimes" >> beam.Map(lambda r: r["timestamp"]),
                  events.records | "EventTimes" >> beam.Map(lambda e: e.ts_us))
                 | "Times" >> beam.Flatten())
        horizon = times | "Latest" >> beam.CombineGlobally(max).without_defaults()
    joined = ({"exposures": exposures | "ExposuresByUser" >> beam.Map(
                   lambda r: (r["user_id"], r)),
               "events": events.records | "EventsByUser" >> beam.Map(lambda e: (e.user_id, e))}
              | "ByUser" >> beam.CoGroupByKey()
              | "Join" >> beam.ParDo(JoinUser(job.window_s),
                                 beam.pvalue.AsSingleton(horizon, default_value=0))
              .with_outputs("users", main="requests"))
    joined.requests | "WriteRequests" >> WriteTable(job.output, "request_outcomes",
                                                     REQUEST_OUTCOMES)
    joined.users | "WriteUsers" >> WriteTable(job.output, "user_outcomes", USER_OUTCOMES)
    events[DEAD_LETTER] | "WriteDeadLetters" >> beam.io.WriteToText(
        str(job.output / "_dead_letter" / "records"), file_name_suffix=".jsonl")


@dataclass
class OutcomeResult:
    output: Path
    counters: dict[str, int]
    seconds: float


def run(argv: Sequence[str] | None = None) -> OutcomeResult:
    """Run the outcome join with Beam command-line options; see the module docstring."""
    options = PipelineOptions(argv)
    job = job_from_options(options)
    out = job.output
    staging = out.parent / f".{out.name}.staging-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    try:
        with beam.Pipeline(options=options) as p:
            join(p, dataclasses.replace(job, output=staging))
        counters = beam_counters(p.result)
        seconds = time.perf_counter() - started
        (staging / "_run.json").write_text(json.dumps(
            {"counters": counters, "seconds": seconds, "attribution_window_s": job.window_s,
             "start_us": job.start_us, "end_us": job.end_us}, indent=2))
        trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        if out.exists():
            out.rename(trash)
        staging.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("outcome join: %s in %.1fs", counters, seconds)
    return OutcomeResult(out, counters, seconds)


__all__ = ["OutcomeJobOptions", "OutcomeJob", "job_from_options", "join", "run",
           "OutcomeResult", "DEFAULT_WINDOW_S"]

if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO)
    run(sys.argv[1:])
