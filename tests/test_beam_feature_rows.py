"""Every row producer writes exactly the columns its table declares (Arrow would silently fill
a missing column with nulls and drop an unknown one)."""

import pytest

from beam_jobs.item_features import item_feature_rows
from beam_jobs.outputs import SESSION_SEQUENCES, TRAINING_EXAMPLES
from beam_jobs.timeline import process_user
from recsys.data.records import US_PER_DAY, Event, Item
from recsys.features.config import FeatureConfig
from recsys.features.rows import catalogue_row, profile_row
from recsys.features.tables import (
    ITEM_CATALOGUE,
    ITEM_FEATURES,
    USER_FEATURES,
    USER_PROFILE,
    USER_SESSION,
)

EVENTS = [Event("e1", "u", "i1", "impression", 5 * US_PER_DAY),
          Event("e2", "u", "i1", "click", 5 * US_PER_DAY + 1, dwell_time_s=20.0)]
OUT = process_user("u", EVENTS, {"i1": Item("i1", "news")}, FeatureConfig(), 40)


@pytest.mark.parametrize("rows, names", [
    (OUT.user_features, USER_FEATURES.arrow_schema().names),
    ([OUT.session_state], USER_SESSION.arrow_schema().names),
    (item_feature_rows("i1", Item("i1"), EVENTS, FeatureConfig(), 40),
     ITEM_FEATURES.arrow_schema().names),
    ([catalogue_row(Item("i1", "news", created_us=0))], ITEM_CATALOGUE.arrow_schema().names),
    ([profile_row({"user_id": "u", "country": "US"})], USER_PROFILE.arrow_schema().names),
    (OUT.sequences, SESSION_SEQUENCES.names),
    (OUT.examples, TRAINING_EXAMPLES.names),
], ids=["user_features", "user_session", "item_features", "item_catalogue", "user_profile",
        "session_sequences", "training_examples"])
def test_rows_have_exactly_the_table_columns(rows, names):
    assert rows
    for row in rows:
        assert sorted(row) == sorted(names)


def test_user_feature_values_on_a_small_timeline():
    rows = {r["event_timestamp"] // US_PER_DAY: r for r in OUT.user_features}
    assert sorted(rows) == [6, 7, 13, 36]  # day 5 enters at 6, leaves 1d/7d/30d at 7/13/36
    first = rows[6]
    assert (first["user_engagements_1d"], first["user_impressions_30d"],
            first["user_clicks_30d"], first["user_ctr_30d"]) == (1, 1, 1, 1.0)
    assert first["user_top_categories_30d"] == ["news"]
    assert rows[7]["user_engagements_1d"] == 0 and rows[7]["user_engagements_7d"] == 1
    assert rows[36]["user_engagements_30d"] == 0 and rows[36]["user_lifetime_engagements"] == 1
    assert rows[36]["user_ctr_30d"] is None


@pytest.mark.parametrize("split, held", [("temporal", ["e7", "e8", "e9"]), ("last_one", ["e9"])])
def test_splits_hold_out_the_latest_positives(split, held):
    # ten likes a day apart: temporal holds floor(0.3 * 10) = 3, leave-last-one-out holds 1
    likes = [Event(f"e{i}", "u", f"i{i}", "like", (i + 1) * US_PER_DAY) for i in range(10)]
    out = process_user("u", likes, {}, FeatureConfig(split=split, test_fraction=0.3), 20)
    test = sorted(r["example_id"] for r in out.examples if r["split"] == "test")
    assert test == held
    assert len(out.sequences) == 10 - len(held)  # features from the train events only
    first_test = min((r for r in out.examples if r["split"] == "test"),
                     key=lambda r: r["event_timestamp"])
    assert len(first_test["history_item_ids"]) == 10 - len(held)
