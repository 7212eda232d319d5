"""The outcome join: exposures and later events, attributed point in time, per answer and per
(experiment, arm, user); the rules on one user, then the Beam job over a lake."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from beam_jobs.attribution import user_outcomes
from beam_jobs.outcomes import run
from recsys.data.records import Event
from recsys.errors import ConfigError
from tests.conftest import event

US = 1_000_000
DAY = 86_400 * US
T0 = int(dt.datetime(2026, 10, 1, 12, tzinfo=dt.timezone.utc).timestamp() * US)


def shown(request_id: str, ts_us: int, items: list[str], arms=("exp=treatment",), holdout=0,
          user="u1") -> list[dict]:
    return [{"request_id": request_id, "timestamp": ts_us, "user_id": user, "item_id": item,
             "position": n, "experiments": list(arms), "holdout": holdout, "tier": "full",
             "device": "mobile", "country": "US", "language": "en"}
            for n, item in enumerate(items)]


def did(kind: str, item: str, ts_us: int, request_id: str | None = None, **kw) -> Event:
    return Event(f"e-{kind}-{item}-{ts_us}", "u1", item, kind, ts_us, request_id=request_id,
                 **kw)


def outcomes(exposures, events, window_s=1800.0, horizon_us=T0 + 30 * DAY):
    return user_outcomes("u1", exposures, events, window_s, horizon_us)


def test_an_outcome_counts_for_the_answer_it_names_within_the_window_and_not_before_it():
    exposures = shown("r1", T0, ["a", "b"]) + shown("r2", T0 + 60 * US, ["a", "c"])
    events = [did("click", "a", T0 + 10 * US, request_id="r1"),   # names r1: r1
              did("click", "a", T0 + 70 * US),                     # last touch: r2
              did("watch", "b", T0 + 80 * US, watch_time_s=30.0),  # b only in r1: r1
              did("like", "c", T0 + 30 * US, request_id="r2"),     # before r2 was shown: none
              did("click", "a", T0 + 3_600 * US),                  # after the window: none
              did("impression", "a", T0 + 5 * US),                 # not an outcome
              did("click", "z", T0 + 20 * US)]                     # never shown: organic
    requests, users, attributed = outcomes(exposures, events)
    by_id = {r["request_id"]: r for r in requests}
    assert attributed == 3
    assert (by_id["r1"]["clicks"], by_id["r1"]["watch_time_s"]) == (1, 30.0)
    assert (by_id["r2"]["clicks"], by_id["r2"]["likes"]) == (1, 0)
    assert by_id["r1"]["exposures"] == 2 and by_id["r1"]["experiments"] == ["exp=treatment"]
    (exp_row,) = [u for u in users if u["experiment"] == "exp"]
    assert (exp_row["arm"], exp_row["requests"], exp_row["exposures"]) == ("treatment", 2, 4)
    assert (exp_row["clicks"], exp_row["engaged_requests"]) == (2, 2)


def test_a_click_on_an_interleaved_answer_is_credited_to_the_items_team():
    exposures = [{**row, "team": team} for row, team in zip(
        shown("r1", T0, ["a", "b", "c"], arms=("order=interleaved",)), ["x", "y", "x"])]
    requests, users, _ = outcomes(exposures, [did("click", "c", T0 + US, request_id="r1"),
                                              did("click", "b", T0 + 2 * US),
                                              did("like", "b", T0 + 3 * US)])
    assert requests[0]["team_clicks"] == ["x", "y"]
    row = next(u for u in users if u["experiment"] == "order")
    assert (row["arm"], row["team_clicks"]) == ("interleaved", ["x", "y"])


def test_a_user_is_counted_in_the_arm_of_their_first_answer_and_the_holdout_is_an_experiment():
    exposures = (shown("r1", T0, ["a"], arms=("exp=control",))
                 + shown("r2", T0 + 60 * US, ["b"], arms=("exp=treatment", "other=x")))
    _, users, _ = outcomes(exposures, [did("click", "b", T0 + 61 * US)])
    rows = {u["experiment"]: u for u in users}
    assert set(rows) == {"exp", "other", "holdout"}
    assert (rows["exp"]["arm"], rows["exp"]["requests"], rows["exp"]["clicks"]) == (
        "control", 1, 0)
    assert rows["exp"]["other_arm_requests"] == 1
    assert (rows["other"]["requests"], rows["other"]["clicks"]) == (1, 1)
    assert (rows["holdout"]["arm"], rows["holdout"]["requests"]) == ("rest", 2)


def test_returns_are_counted_by_day_after_the_first_answer_and_unknown_past_the_data():
    exposures = shown("r1", T0, ["a"])
    events = [did("impression", "x", T0 - DAY),          # before: a returning user
              did("impression", "x", T0 + DAY + 5 * US)]  # day 1 after the first answer
    _, users, _ = outcomes(exposures, events, horizon_us=T0 + 3 * DAY)
    row = next(u for u in users if u["experiment"] == "exp")
    assert (row["returned_d1"], row["returned_d7"], row["returning"]) == (1, None, 1)
    _, users, _ = outcomes(exposures, [], horizon_us=T0 + 9 * DAY)
    row = next(u for u in users if u["experiment"] == "exp")
    assert (row["returned_d1"], row["returned_d7"], row["returning"]) == (0, 0, 0)


@pytest.mark.slow
def test_the_beam_job_joins_the_lakes_exposures_and_events(lake, policy, tmp_path):
    iso = dt.datetime.fromtimestamp(T0 / US, dt.timezone.utc)

    def at(seconds: float) -> str:
        return (iso + dt.timedelta(seconds=seconds)).isoformat()

    rows = []
    for n, user in enumerate(["u1", "u2", "u3"]):
        for row in shown(f"r{n}", T0, ["a", "b", "c"], user=user,
                         arms=(f"exp={'control' if n == 0 else 'treatment'}",)):
            rows.append({**row, "exposure_id": f"{row['request_id']}/{row['position']}",
                         "timestamp": at(n), "score": 1.0, "source": "two-tower",
                         "propensity": 1.0, "retrieval_version": 1, "ranker_version": 1})
    lake.write_exposures(rows, "service", policy=policy)
    lake.write_exposures(rows[:3], "service", policy=policy)  # redelivered: no effect
    lake.write_events([
        event(event_id="c1", user_id="u2", item_id="b", event_type="click",
              timestamp=at(10), request_id="r1", position=1),
        event(event_id="c2", user_id="u3", item_id="c", event_type="click", timestamp=at(20)),
        event(event_id="c3", user_id="u3", item_id="c", event_type="click",
              timestamp=at(-20))],  # before it was shown
        "client", policy=policy)
    out = tmp_path / "outcomes"
    result = run(["--lake", str(lake.root), "--output", str(out)])
    assert result.counters["outcome_users"] == 3
    requests = pq.read_table(out / "request_outcomes").to_pylist()
    assert sorted((r["request_id"], r["exposures"], r["clicks"]) for r in requests) == [
        ("r0", 3, 0), ("r1", 3, 1), ("r2", 3, 1)]
    # the version that served each answer, and its segment, for live quality per version
    assert {(r["retrieval_version"], r["device"]) for r in requests} == {(1, "mobile")}
    users = pq.read_table(out / "user_outcomes").to_pylist()
    exp = sorted((u["user_id"], u["arm"], u["clicks"]) for u in users if u["experiment"] == "exp")
    assert exp == [("u1", "control", 0), ("u2", "treatment", 1), ("u3", "treatment", 1)]
    assert all(u["returned_d1"] is None for u in users)  # the data ends the same day
    run(["--lake", str(lake.root), "--output", str(out), "--start", at(1)])
    later = pq.read_table(out / "request_outcomes").column("request_id").to_pylist()
    assert sorted(later) == ["r1", "r2"]  # r0 was shown before --start


@pytest.mark.parametrize("argv, message", [
    ([], "--lake is required"),
    (["--lake", "/nonexistent", "--output", "x"], "is not a recsys lake"),
    (["--attribution_window_s", "0"], "--attribution_window_s must be positive"),
    (["--end", "yesterday"], "--end: not an ISO time"),
    (["--end", "2026-10-01T00:00:00"], "has no time zone"),
    (["--start", "soon"], "--start: not an ISO time"),
    (["--event_log_dsn", "host=x"], "--event_log_dsn needs --event_log_schema"),
])
def test_bad_options_are_refused_by_name(lake, tmp_path, argv, message):
    base = [] if not argv or argv[0] == "--lake" else [
        "--lake", str(lake.root), "--output", str(tmp_path / "o")]
    with pytest.raises(ConfigError, match=message):
        run(base + argv)


@pytest.mark.slow
@pytest.mark.services
def test_the_join_reads_the_production_profiles_postgresql_log(lake, tmp_path):
    """Exposures and events the stream worker wrote to PostgreSQL (production profile), read
    with --event_log_dsn / --event_log_schema: timestamps come back as datetimes."""
    import uuid

    import pyarrow as pa
    from feast_support import PG, drop_schema, require_services

    from recsys.data.schemas import EVENTS, EXPOSURES, INGESTED_AT
    from recsys.features.postgres_loader import connection_string
    from stream_worker.postgres_events import PostgresEventLog

    require_services()
    dsn, schema = connection_string(**PG), f"t{uuid.uuid4().hex[:10]}"
    when = dt.datetime.fromtimestamp(T0 / US, dt.timezone.utc)

    def table(spec, rows):
        fields = [f for f in spec.schema if f.name != INGESTED_AT]
        return pa.Table.from_pylist([{f.name: r.get(f.name) for f in fields} for r in rows],
                                    schema=pa.schema(fields))

    log = PostgresEventLog(dsn, schema)
    try:
        log.write_exposures(table(EXPOSURES, [
            {**row, "exposure_id": f"r1/{row['position']}", "timestamp": when}
            for row in shown("r1", T0, ["a", "b"], arms=("exp=treatment",))]))
        log.write_events(table(EVENTS, [{
            "event_id": "c1", "user_id": "u1", "item_id": "b", "event_type": "click",
            "timestamp": when + dt.timedelta(seconds=5), "request_id": "r1", "position": 1}]))
        out = tmp_path / "outcomes"
        run(["--lake", str(lake.root), "--output", str(out), "--event_log_dsn", dsn,
             "--event_log_schema", schema])
    finally:
        log.close()
        drop_schema(schema)
    (request,) = pq.read_table(out / "request_outcomes").to_pylist()
    assert (request["request_id"], request["exposures"], request["clicks"]) == ("r1", 2, 1)
