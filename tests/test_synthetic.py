"""Statistical properties of the simulated platform, checked on data generated in memory."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from recsys.data.schemas import EVENTS
from recsys.data.synthetic import SyntheticConfig, SyntheticPlatform, generate
from recsys.data.synthetic.vocabulary import CATEGORIES
from recsys.data.validation import validate
from recsys.errors import ConfigError

END = dt.date(2026, 11, 1)
CFG = SyntheticConfig(users=3_000, items=20_000, days=10, seed=7, end_date=END)


@pytest.fixture(scope="module")
def world():
    platform = SyntheticPlatform(CFG)
    events = pa.concat_tables(platform.days()).to_pandas()
    users = platform.users_table.to_pandas()
    items = platform.items_table.to_pandas()
    return platform, events, users, items


def _gini(counts: np.ndarray) -> float:
    x = np.sort(counts.astype(float))
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def test_same_seed_same_data_other_seed_other_data():
    small = SyntheticConfig(users=300, items=1_000, days=2, seed=3, end_date=END)
    a, b = SyntheticPlatform(small), SyntheticPlatform(small)
    assert a.users_table.equals(b.users_table) and a.items_table.equals(b.items_table)
    assert a.day(1).equals(b.day(1))
    other = SyntheticPlatform(SyntheticConfig(**{**small.__dict__, "seed": 4}))
    assert not other.day(1).equals(a.day(1))


def test_every_generated_record_is_valid(world):
    platform, *_ = world
    result = validate(platform.day(3), EVENTS)
    assert result.rejected == [] and result.duplicates == 0


def test_all_event_types_and_impressions_without_clicks(world):
    _, events, _, _ = world
    kinds = events.event_type.value_counts()
    assert set(kinds.index) == {"impression", "click", "watch", "like", "skip"}
    ctr = kinds["click"] / kinds["impression"]
    assert 0.05 < ctr < 0.3  # most impressions are not clicked
    assert kinds["watch"] <= kinds["click"] and kinds["like"] < kinds["click"]


def test_popularity_is_heavily_skewed(world):
    _, events, _, items = world
    shown = events[events.event_type == "impression"].item_id.value_counts()
    top_1pct = shown.iloc[: max(1, len(items) // 100)].sum() / shown.sum()
    assert top_1pct > 0.2, top_1pct
    all_counts = shown.reindex(items.item_id, fill_value=0).to_numpy()
    assert _gini(all_counts) > 0.7


def test_new_items_arrive_every_day_and_get_shown(world):
    platform, events, _, items = world
    start = pd.Timestamp(CFG.window_start)
    created_day = ((items.created_at - start) // pd.Timedelta(days=1))
    per_day = created_day[created_day >= 0].value_counts().sort_index()
    assert list(per_day.index) == list(range(CFG.days))
    assert per_day.min() > 0.2 * len(items) * (1 - CFG.initial_item_share) / CFG.days
    new_ids = set(items.item_id[created_day >= 0])
    shown_new = events[(events.event_type == "impression") & events.item_id.isin(new_ids)]
    assert shown_new.item_id.nunique() > 0.1 * len(new_ids)


def test_some_new_items_surge_into_the_top_within_two_days(world):
    platform, events, _, items = world
    surge_ids = set(items.item_id[platform.items.surge])
    assert surge_ids
    created = items.set_index("item_id").created_at
    imp = events[events.event_type == "impression"]
    early = imp[imp.item_id.isin(surge_ids)]
    early = early[early.timestamp < early.item_id.map(created) + pd.Timedelta(days=2)]
    top = set(imp.item_id.value_counts().index[:100])
    assert len(top & set(early.item_id)) >= 3


def test_nothing_happens_before_an_item_exists_or_a_user_signs_up(world):
    platform, events, users, items = world
    created = events.item_id.map(items.set_index("item_id").created_at)
    assert (events.timestamp >= created).all()
    true_signup = pd.Series(pd.to_datetime(platform.users.signup_us, unit="us", utc=True),
                            index=users.user_id)
    assert (events.timestamp > events.user_id.map(true_signup)).all()
    assert events.timestamp.max() < pd.Timestamp(CFG.window_end)
    assert events.timestamp.min() >= pd.Timestamp(CFG.window_start)


def test_cold_users_and_profile_gaps(world):
    _, events, users, _ = world
    in_window = users.signup_at >= pd.Timestamp(CFG.window_start)
    assert 0.05 < in_window.mean() < 0.15  # about new_user_share sign up during the window
    per_user = events.groupby("user_id").size().reindex(users.user_id, fill_value=0)
    assert (per_user == 0).any() and (per_user.between(1, 15)).sum() > 30
    for column in ("signup_at", "country", "language", "device", "age_bucket"):
        assert 0.05 < users[column].isna().mean() < 0.4, column
    assert users.declared_categories.notna().sum() > 0


def test_clicks_follow_taste_and_language(world):
    platform, events, users, items = world
    imp = events[events.event_type == "impression"]
    clicked = set(events.loc[events.event_type == "click", ["user_id", "item_id", "session_id"]]
                  .itertuples(index=False, name=None))
    key = list(zip(imp.user_id, imp.item_id, imp.session_id))
    y = np.array([k in clicked for k in key])
    uidx = imp.user_id.str[1:].astype(int).to_numpy()
    iidx = imp.item_id.str[1:].astype(int).to_numpy()
    taste = platform.users.taste[uidx, platform.items.category[iidx]]
    favourite = taste > np.quantile(taste, 0.75)
    assert y[favourite].mean() > 1.5 * y[~favourite].mean()
    same_lang = platform.users.language[uidx] == platform.items.language[iidx]
    assert y[same_lang].mean() > 1.5 * y[~same_lang].mean()


def test_watch_fraction_is_higher_for_better_matches(world):
    platform, events, _, items = world
    watches = events[events.event_type == "watch"]
    uidx = watches.user_id.str[1:].astype(int).to_numpy()
    iidx = watches.item_id.str[1:].astype(int).to_numpy()
    frac = watches.watch_time_s.to_numpy() / platform.items.duration_s[iidx]
    assert (frac >= 0).all() and (frac <= 1.0001).all()
    taste = platform.users.taste[uidx, platform.items.category[iidx]] * CFG.categories
    assert frac[taste > 2].mean() > frac[taste < 0.5].mean() + 0.1


def test_sessions_are_ordered_and_positions_count_up(world):
    _, events, _, _ = world
    imp = events[events.event_type == "impression"].sort_values(["session_id", "timestamp"])
    first = imp.groupby("session_id").position.first()
    assert (first == 0).all()
    assert (imp.groupby("session_id").position.diff().dropna() == 1).all()
    assert imp.groupby("session_id").user_id.nunique().max() == 1


def test_generate_into_a_lake_is_idempotent(tmp_path):
    from recsys.data.lake import Lake
    cfg = SyntheticConfig(users=200, items=500, days=2, seed=1, end_date=END)
    lake = Lake(tmp_path / "lake", create=True)
    first = generate(cfg, lake, progress=False)
    again = generate(cfg, lake, progress=False)
    assert first.events_written > 1000 and again.events_written == 0
    assert lake.read("events").num_rows == first.events_written
    assert {p.name for p in (lake.root / "events").iterdir()} == {
        "event_date=2026-10-30", "event_date=2026-10-31"}


@pytest.mark.parametrize("field, value, message", [
    ("users", 0, "users must be a positive integer, got 0"),
    ("days", -1, "days must be a positive integer, got -1"),
    ("seed", -5, "seed must be an integer >= 0, got -5"),
    ("categories", len(CATEGORIES) + 1, "categories must be an integer in [1, 32], got 33"),
    ("surge_share", 1.5, "surge_share must be a number in [0, 1], got 1.5"),
    ("zipf_exponent", -1.0, "zipf_exponent must be a number >= 0, got -1.0"),
    ("end_date", dt.date(2999, 1, 1), "end_date 2999-01-01 lies in the future"),
])
def test_bad_config_names_the_field(field, value, message):
    with pytest.raises(ConfigError) as err:
        SyntheticConfig(**{field: value})
    assert message in str(err.value)


def test_the_lake_records_the_platform_that_generated_it(tmp_path):
    from recsys.data.lake import Lake
    from recsys.data.synthetic.platform_file import read_platform_config

    cfg = SyntheticConfig(users=200, items=500, days=2, seed=11)  # end_date: today
    generate(cfg, Lake(tmp_path / "lake", create=True), progress=False)
    recorded = read_platform_config(tmp_path / "lake")
    assert recorded.end_date == cfg.window_end.date()
    assert recorded.replace(end_date=None) == cfg
    # The recorded config rebuilds the catalogue behind the lake, not just one of its size.
    lake_items = Lake(tmp_path / "lake").read("items").to_pandas().set_index("item_id")
    rebuilt = SyntheticPlatform(recorded).items_table.to_pandas().set_index("item_id")
    assert (rebuilt.loc[lake_items.index, "category"] == lake_items["category"]).all()


def test_a_lake_without_or_with_a_broken_platform_record_is_named(tmp_path):
    from recsys.data.synthetic.platform_file import PLATFORM_FILE, read_platform_config
    from recsys.errors import LakeError

    with pytest.raises(LakeError, match=PLATFORM_FILE):
        read_platform_config(tmp_path)
    (tmp_path / PLATFORM_FILE).write_text('{"users": -3, "end_date": "2026-11-01"}')
    with pytest.raises(LakeError, match="users must be"):
        read_platform_config(tmp_path)
    (tmp_path / PLATFORM_FILE).write_text('{"users": 3}')
    with pytest.raises(LakeError, match="end_date"):
        read_platform_config(tmp_path)
