"""The feature repositories: declarative, complete, identical across profiles, and usable with
the stock feast CLI."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from feast_support import REPO, drop_schema, embedded_repo, production_repo

from recsys.features.store import in_repo
from recsys.features.tables import FEATURE_TABLES, USER_FEATURES

FEAST = str(Path(sys.executable).with_name("feast"))


def _parse(path: Path):
    from feast.repo_operations import parse_repo

    with in_repo(path.resolve()):
        return parse_repo(path.resolve())


@pytest.mark.parametrize("profile", [REPO, REPO / "production"], ids=["embedded", "production"])
def test_every_feature_view_is_fully_described(profile):
    contents = _parse(profile)
    views = {fv.name: fv for fv in contents.feature_views}
    assert set(views) == set(FEATURE_TABLES)
    for name, fv in views.items():
        assert fv.owner and fv.description and fv.tags, name
        assert fv.ttl is not None, name
        assert sorted(f.name for f in fv.schema if f.name not in fv.join_keys) == \
            sorted(FEATURE_TABLES[name].feature_names), name
    assert {s.name for s in contents.feature_services} == {"retrieval", "ranking"}
    assert {p.name for p in contents.data_sources if type(p).__name__ == "PushSource"} == {
        "user_session_push", "item_stream_push"}


def test_repo_files_are_declarative():
    for path in [*REPO.glob("*.py"), *(REPO / "production").glob("*.py")]:
        text = path.read_text()
        for word in ("open(", "os.environ", "\nif ", "\nfor ", "\nwhile "):
            assert word not in text, f"{path.name} contains {word!r}"


def _rows(n: int) -> dict[str, pa.Table]:
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    rows = [{"user_id": f"u{i}", "event_timestamp": now - dt.timedelta(hours=i),
             "created_timestamp": now - dt.timedelta(hours=i), "user_engagements_7d": i}
            for i in range(n)]
    return {"user_features": pa.Table.from_pylist(rows, schema=USER_FEATURES.arrow_schema())}


def _feast(repo: Path, *args: str) -> str:
    # From inside the repository: Feast 0.67 resolves relative paths against the working
    # directory in every command but apply.
    out = subprocess.run([FEAST, "-c", str(repo), *args], cwd=repo, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _stock_cli_round_trip(repo: Path) -> None:
    _feast(repo, "apply")
    listed = _feast(repo, "feature-views", "list")
    for name in FEATURE_TABLES:
        assert name in listed
    end = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).strftime(
        "%Y-%m-%dT%H:%M:%S")
    _feast(repo, "materialize-incremental", end)
    from feast import FeatureStore

    with in_repo(repo):
        store = FeatureStore(repo_path=str(repo))
        online = store.get_online_features(["user_features:user_engagements_7d"],
                                           [{"user_id": "u3"}, {"user_id": "zz"}]).to_dict()
    assert online["user_engagements_7d"] == [3, None]


@pytest.mark.slow
def test_stock_feast_cli_on_the_embedded_profile(tmp_path):
    _stock_cli_round_trip(embedded_repo(tmp_path, _rows(10)))


@pytest.mark.slow
@pytest.mark.services
def test_stock_feast_cli_on_the_production_profile(tmp_path):
    repo, schema = production_repo(tmp_path, _rows(10))
    try:
        _stock_cli_round_trip(repo)
    finally:
        drop_schema(schema)


@pytest.mark.slow
def test_feast_apply_works_in_a_fresh_checkout_before_anything_else_ran(tmp_path):
    """`cd feature_repo && feast apply` on exactly the files git holds (no data/ contents)."""
    root = REPO.parent
    listed = subprocess.run(["git", "ls-files", "feature_repo"], cwd=root, capture_output=True,
                            text=True)
    if listed.returncode != 0 or not listed.stdout.strip():
        pytest.skip("not a git checkout: cannot tell which files a fresh clone holds")
    for name in listed.stdout.split():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((root / name).read_bytes())
    repo = tmp_path / "feature_repo"
    assert not (repo / "data" / "registry.db").exists()
    done = subprocess.run([FEAST, "apply"], cwd=repo, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (repo / "data" / "registry.db").is_file()
