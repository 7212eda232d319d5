"""`recsys features build`: run the Beam feature build for a profile and put its outputs where
the profile's offline store reads them."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from beam_jobs.pipeline import BuildResult, run
from recsys.features.postgres_loader import connection_string, load_all
from recsys.features.store import profile_repo, repo_config

EVENT_LOG_DSN_ENV = "RECSYS_EVENT_LOG_DSN"


@contextlib.contextmanager
def _in_environment(name: str, value: str | None) -> Iterator[None]:
    """``$name`` set to ``value`` (None: left alone) until the block ends, then restored."""
    if value is None:
        yield
        return
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@dataclass
class FeatureBuild:
    beam: BuildResult
    loaded: dict[str, int] | None  # rows per table loaded into PostgreSQL (production only)


def build_features(lake: Path, repo: Path, profile: str,
                   beam_args: Sequence[str] = ()) -> FeatureBuild:
    """Run the Beam jobs on ``lake`` into ``<profile dir>/data``; for the production profile,
    on the lake and the stream worker's PostgreSQL event log (the offline store's schema),
    then load the tables into its PostgreSQL offline store. ``beam_args`` come last, so they
    override these options.

    The offline store's password (Feast's ``password``, which may be ``${VAR}``) never goes
    into the pipeline's options: the Beam job is given the name of an environment variable
    (``--event_log_dsn_env``) that holds the DSN for as long as the job runs, in this process
    and the workers it starts."""
    path = profile_repo(repo, profile)
    out = path / "data"
    args = ["--lake", str(lake), "--output", str(out)]
    dsn = schema = password = secret_dsn = None
    if profile == "production":
        from psycopg.conninfo import make_conninfo

        store = repo_config(path).offline_store
        dsn, schema, password = (connection_string(store.host, store.port, store.database,
                                                   store.user), store.db_schema,
                                 store.password or None)
        if password:
            secret_dsn = make_conninfo(dsn, password=password)
            args += ["--event_log_dsn_env", EVENT_LOG_DSN_ENV]
        else:
            args += ["--event_log_dsn", dsn]
        args += ["--event_log_schema", schema]
    with _in_environment(EVENT_LOG_DSN_ENV, secret_dsn):
        result = run([*args, *beam_args])
    loaded = load_all(dsn, schema, out, password) if dsn is not None else None
    return FeatureBuild(result, loaded)
