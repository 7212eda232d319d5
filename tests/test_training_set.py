import datetime as dt

import pandas as pd
import pytest
from feast_support import embedded_repo

from recsys.data.lake import Lake
from recsys.data.synthetic import SyntheticConfig, generate
from recsys.errors import FeatureStoreError
from recsys.features.store import apply
from recsys.features.training_set import join_features, training_set
from workflows.features_build import build_features


@pytest.mark.slow
def test_training_set_is_point_in_time_and_keeps_every_example(tmp_path):
    lake = Lake(tmp_path / "lake", create=True)
    generate(SyntheticConfig(users=80, items=300, days=3, seed=9, end_date=dt.date(2026, 1, 4)),
             lake, progress=False)
    repo = embedded_repo(tmp_path, {})
    build_features(lake.root, repo, "embedded", ["--split", "temporal"])
    apply(repo)
    train = training_set(repo, split="train")
    everything = training_set(repo)
    assert len(everything) > len(train) > 100
    assert set(train["split"]) == {"train"}
    assert {"user_engagements_7d", "item_clicks_7d", "item_category",
            "session_recent_item_ids"} <= set(train.columns)
    # The first feature rows are stamped at the first midnight: examples of the first day
    # must not see any batch feature, later ones must.
    first_day = train["event_timestamp"] < pd.Timestamp("2026-01-02", tz="UTC")
    assert train.loc[first_day, "user_engagements_7d"].isna().all()
    assert train.loc[~first_day, "user_engagements_7d"].notna().any()
    # joined in chunks (bounded memory), the same rows in the same order
    rows = everything[["user_id", "item_id", "event_timestamp"]].head(300)
    pd.testing.assert_frame_equal(join_features(repo, rows, "ranking", chunk_rows=37),
                                  join_features(repo, rows, "ranking"))


def test_missing_examples_say_to_build_first(tmp_path):
    repo = embedded_repo(tmp_path, {})
    with pytest.raises(FeatureStoreError, match="run `recsys features build` first"):
        training_set(repo)
