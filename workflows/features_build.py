"""`recsys features build`: run the Beam feature build for a profile and put its outputs where
the profile's offline store reads them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from beam_jobs.pipeline import BuildResult, run
from recsys.features.postgres_loader import connection_string, load_all
from recsys.features.store import profile_repo, repo_config


@dataclass
class FeatureBuild:
    beam: BuildResult
    loaded: dict[str, int] | None  # rows per table loaded into PostgreSQL (production only)


def build_features(lake: Path, repo: Path, profile: str,
                   beam_args: Sequence[str] = ()) -> FeatureBuild:
    """Run the Beam jobs on ``lake`` into ``<profile dir>/data``; for the production profile,
    on the lake and the stream worker's PostgreSQL event log (the offline store's schema),
    then load the tables into its PostgreSQL offline store. ``beam_args`` come last, so they
    override these options."""
    path = profile_repo(repo, profile)
    out = path / "data"
    args = ["--lake", str(lake), "--output", str(out)]
    dsn = schema = None
    if profile == "production":
        store = repo_config(path).offline_store
        dsn = connection_string(store.host, store.port, store.database, store.user,
                                store.password or "")
        schema = store.db_schema
        args += ["--event_log_dsn", dsn, "--event_log_schema", schema]
    result = run([*args, *beam_args])
    loaded = load_all(dsn, schema, out) if dsn is not None else None
    return FeatureBuild(result, loaded)
