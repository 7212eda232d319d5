"""The lake's exposures table: what the service showed, one row per item of an answer,
partitioned by day and written once per exposure id however often it is delivered; bad rows
dead-lettered with their reasons."""

from __future__ import annotations

from recsys.data.dead_letter import read_dead_letter


def exposure(request_id: str = "r1", position: int = 0, **changes) -> dict:
    row = {"exposure_id": f"{request_id}/{position}", "request_id": request_id,
           "timestamp": "2026-10-01T12:00:00Z", "user_id": "u1", "item_id": f"i{position}",
           "position": position, "score": 0.5, "source": "two-tower", "propensity": 1.0,
           "tier": "full", "experiments": ["ranker-v2=treatment"], "holdout": 0,
           "retrieval_version": 3, "ranker_version": 3, "device": "tv", "country": "US",
           "language": "en"}
    return {**row, **changes}


def test_exposures_are_partitioned_by_day_and_written_once(lake, policy):
    answer = [exposure("r1", p) for p in range(5)]
    later = [exposure("r2", p, timestamp="2026-10-02T00:00:01Z") for p in range(3)]
    first = lake.write_exposures(answer + later, "service", policy=policy)
    again = lake.write_exposures(answer, "service", policy=policy)  # a redelivered batch
    assert (first.written, again.written, again.already_in_lake) == (8, 0, 5)
    assert sorted(first.partitions) == ["2026-10-01", "2026-10-02"]
    table = lake.read("exposures")
    assert table.num_rows == 8
    rows = sorted(table.to_pylist(), key=lambda r: r["exposure_id"])
    assert rows[0]["experiments"] == ["ranker-v2=treatment"] and rows[0]["position"] == 0
    assert {r["request_id"] for r in rows} == {"r1", "r2"}


def test_bad_exposures_are_dead_lettered_with_their_reasons(lake, policy):
    rows = [exposure("r1", p) for p in range(40)] + [
        exposure("r2", 0, propensity=0.0), exposure("r2", 1, tier="best"),
        dict(exposure("r2", 2), position=-1), exposure("r2", 3, holdout=2)]
    report = lake.write_exposures(rows, "service", policy=policy, max_bad_fraction=0.5)
    assert (report.written, report.rejected) == (40, 4)
    reasons = [e["reason"] for e in read_dead_letter(report.dead_letter)]
    assert reasons == ["propensity must lie in (0, 1], got 0.0",
                       "unknown tier 'best' (expected one of: full, retrieval, "
                       "segment-popular, global-popular)",
                       "position must be >= 0, got -1", "holdout must be 0 or 1, got 2"]
