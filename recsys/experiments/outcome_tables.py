"""The tables of the outcome join (``beam_jobs/outcomes.py``), read by the analysis.

* ``request_outcomes``: one row per answer of ``/v1/recommendations`` (request id), with what
  its user did with it within the attribution window.
* ``user_outcomes``: one row per (experiment, arm, user): the user's requests, exposures and
  attributed outcomes in that arm from their first exposure in it on, whether they came back
  on day 1 and day 7 after it (null when the data ends before that day does), and their
  segment at that first exposure. The global holdout is the experiment ``holdout`` with the
  arms ``holdout`` and ``rest``.

Guarantees: a user has at most one row per experiment (the arm of their first exposure;
exposures in another arm after a change of the split are left out and counted).
"""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")
HOLDOUT_EXPERIMENT = "holdout"
HOLDOUT_ARMS = ("rest", "holdout")  # baseline first
RETURN_DAYS = (1, 7)
# outcome counts per request and per user, from the events attributed to exposures
OUTCOME_COUNTS = ("clicks", "likes", "skips", "shares")

REQUEST_OUTCOMES = pa.schema([
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("user_id", pa.string(), nullable=False),
    pa.field("timestamp", TIMESTAMP, nullable=False),
    pa.field("experiments", pa.list_(pa.string())),
    pa.field("holdout", pa.int32()),
    pa.field("tier", pa.string()),
    pa.field("exposures", pa.int64(), nullable=False),
    *[pa.field(name, pa.int64(), nullable=False) for name in OUTCOME_COUNTS],
    pa.field("watch_time_s", pa.float64(), nullable=False),
    pa.field("team_clicks", pa.list_(pa.string())),  # interleaved: the team of each click
    pa.field("retrieval_version", pa.int32()),  # the version that served the answer
    pa.field("device", pa.string()),
    pa.field("country", pa.string()),
])

USER_OUTCOMES = pa.schema([
    pa.field("experiment", pa.string(), nullable=False),
    pa.field("arm", pa.string(), nullable=False),
    pa.field("user_id", pa.string(), nullable=False),
    pa.field("first_exposure", TIMESTAMP, nullable=False),
    pa.field("requests", pa.int64(), nullable=False),
    pa.field("exposures", pa.int64(), nullable=False),
    *[pa.field(name, pa.int64(), nullable=False) for name in OUTCOME_COUNTS],
    pa.field("watch_time_s", pa.float64(), nullable=False),
    pa.field("engaged_requests", pa.int64(), nullable=False),  # requests with a click or more
    pa.field("team_clicks", pa.list_(pa.string())),  # interleaved answers: each click's team
    *[pa.field(f"returned_d{n}", pa.int32()) for n in RETURN_DAYS],
    pa.field("returning", pa.int32(), nullable=False),  # any event before the first exposure
    pa.field("device", pa.string()),
    pa.field("country", pa.string()),
    pa.field("language", pa.string()),
    pa.field("other_arm_requests", pa.int64(), nullable=False),  # left out: split changed
])

__all__ = ["REQUEST_OUTCOMES", "USER_OUTCOMES", "HOLDOUT_EXPERIMENT", "HOLDOUT_ARMS",
           "RETURN_DAYS", "OUTCOME_COUNTS"]
