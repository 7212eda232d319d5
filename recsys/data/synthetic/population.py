"""The simulated users and items: latent attributes the simulation uses, and the catalogue rows
(with realistic gaps) that the lake receives.

Guarantees: a pure function of the config; item and user ids are zero-padded so that they sort
in creation order; no user signs up and no item is created after the window ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.data.schemas import AGE_BUCKETS, ITEMS, TIMESTAMP, USERS
from recsys.data.synthetic.config import SyntheticConfig
from recsys.data.synthetic.vocabulary import (
    CATEGORIES,
    DEVICE_NAMES,
    DEVICE_SHARES,
    LANGUAGES,
    TAG_WORDS,
    country_table,
    language_shares,
)

US_PER_DAY = 86_400 * 1_000_000
AGE_SHARES = np.array([0.06, 0.24, 0.27, 0.18, 0.12, 0.08, 0.05])


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    numbers = pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "")


def _timestamps(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64), type=pa.int64()).cast(TIMESTAMP)


def _with_gaps(array: pa.Array, rng: np.random.Generator, share: float) -> pa.Array:
    if share <= 0:
        return array
    missing = rng.random(len(array)) < share
    return pc.if_else(pa.array(missing), pa.nulls(len(array), array.type), array)


def _lists(values: np.ndarray, lengths: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = pa.DictionaryArray.from_arrays(pa.array(values.astype(np.int32)),
                                          pa.array(names)).cast(pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), flat)


@dataclass
class Items:
    category: np.ndarray  # int, index into CATEGORIES
    language: np.ndarray  # int, index into LANGUAGES
    created_us: np.ndarray  # int64 microseconds since epoch
    created_day: np.ndarray  # int, day index in the window (negative: before it)
    duration_s: np.ndarray  # float32
    quality: np.ndarray  # float32, latent appeal shared by all users
    base_weight: np.ndarray  # float64, Zipf popularity
    surge: np.ndarray  # bool, a surging new item
    tag_words: np.ndarray  # int, flat tag word indices
    tag_lengths: np.ndarray  # int, tags per item

    @property
    def n(self) -> int:
        return len(self.category)

    def to_arrow(self) -> pa.Table:
        n = self.n
        ids = _ids("i", n, max(7, len(str(n))))
        cat_names = pa.DictionaryArray.from_arrays(pa.array(self.category.astype(np.int32)),
                                                   pa.array(CATEGORIES)).cast(pa.string())
        lang_names = pa.DictionaryArray.from_arrays(pa.array(self.language.astype(np.int32)),
                                                    pa.array(list(LANGUAGES))).cast(pa.string())
        first_tag = pa.array(self.tag_words[np.cumsum(self.tag_lengths) - self.tag_lengths]
                             .astype(np.int32))
        title = pc.binary_join_element_wise(
            pc.utf8_capitalize(cat_names),
            pa.DictionaryArray.from_arrays(first_tag, pa.array(TAG_WORDS)).cast(pa.string()),
            ids, " ")
        columns = {
            "item_id": ids,
            "title": title,
            "category": cat_names,
            "language": lang_names,
            "tags": _lists(self.tag_words, self.tag_lengths, TAG_WORDS),
            "created_at": _timestamps(self.created_us),
            "duration_s": pa.array(self.duration_s, type=pa.float32()),
        }
        return pa.table(columns, schema=pa.schema([ITEMS.schema.field(c) for c in columns]))


def make_items(cfg: SyntheticConfig, rng: np.random.Generator) -> Items:
    n = cfg.items
    start_us = int(cfg.window_start.timestamp() * 1_000_000)
    n_cats = cfg.categories
    cat_pop = rng.dirichlet(np.full(n_cats, 2.0))
    category = rng.choice(n_cats, size=n, p=cat_pop)
    language = rng.choice(len(LANGUAGES), size=n, p=language_shares())
    initial = rng.random(n) < cfg.initial_item_share
    # Items before the window are spread over the preceding year; the rest arrive every day.
    created_us = np.where(
        initial,
        start_us - rng.integers(1, 365 * US_PER_DAY, size=n),
        start_us + rng.integers(0, cfg.days * US_PER_DAY, size=n),
    )
    order = np.argsort(created_us, kind="stable")  # ids in creation order
    category, language, created_us = category[order], language[order], created_us[order]
    initial = initial[order]
    created_day = np.floor_divide(created_us - start_us, US_PER_DAY)
    rank = rng.permutation(n) + 1
    base_weight = rank.astype(np.float64) ** -cfg.zipf_exponent
    surge = ~initial & (rng.random(n) < cfg.surge_share)
    # Lengths differ by category (shorts vs documentaries): log-normal around a category median.
    cat_median = np.exp(rng.uniform(np.log(45), np.log(1800), size=n_cats))
    duration_s = (cat_median[category] * rng.lognormal(0, 0.6, size=n)).astype(np.float32)
    quality = rng.normal(0, 1, size=n).astype(np.float32)
    tag_lengths = rng.integers(1, 4, size=n)
    # Each category prefers a few tag words, so tags carry signal about the category.
    cat_tag_pref = rng.dirichlet(np.full(len(TAG_WORDS), 0.3), size=n_cats)
    tag_cat = np.repeat(category, tag_lengths)
    cum = np.cumsum(cat_tag_pref, axis=1)
    draws = rng.random(len(tag_cat))
    tag_words = np.minimum((cum[tag_cat] < draws[:, None]).sum(axis=1), len(TAG_WORDS) - 1)
    return Items(category, language, created_us, created_day, duration_s, quality, base_weight,
                 surge, tag_words, tag_lengths)


@dataclass
class Users:
    language: np.ndarray
    country: np.ndarray
    device: np.ndarray
    age: np.ndarray
    taste: np.ndarray  # (users, categories) float32 rows summing to 1
    activity: np.ndarray  # probability of being active on a given day
    click_bias: np.ndarray  # per-user shift of click propensity
    signup_us: np.ndarray
    signup_day: np.ndarray
    declared: np.ndarray  # (users, 2) category indices, -1 where none was declared

    @property
    def n(self) -> int:
        return len(self.language)

    def to_arrow(self, rng: np.random.Generator, gap_share: float) -> pa.Table:
        n = self.n
        countries, _ = country_table()
        def names(codes: np.ndarray, vocab) -> pa.Array:
            return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)),
                                                  pa.array(list(vocab))).cast(pa.string())
        has = self.declared >= 0
        declared = _lists(self.declared[has], has.sum(axis=1), CATEGORIES)
        declared = pc.if_else(pa.array(has.any(axis=1)), declared, pa.nulls(n, declared.type))
        columns = {
            "user_id": _ids("u", n, max(6, len(str(n)))),
            "signup_at": _with_gaps(_timestamps(self.signup_us), rng, gap_share),
            "country": _with_gaps(names(self.country, countries), rng, gap_share),
            "language": _with_gaps(names(self.language, LANGUAGES), rng, gap_share),
            "device": _with_gaps(names(self.device, DEVICE_NAMES), rng, gap_share),
            "age_bucket": _with_gaps(names(self.age, AGE_BUCKETS), rng, 2 * gap_share),
            "declared_categories": declared,
        }
        return pa.table(columns, schema=pa.schema([USERS.schema.field(c) for c in columns]))


def make_users(cfg: SyntheticConfig, rng: np.random.Generator) -> Users:
    n = cfg.users
    start_us = int(cfg.window_start.timestamp() * 1_000_000)
    language = rng.choice(len(LANGUAGES), size=n, p=language_shares())
    _, country_given_lang = country_table()
    cum = np.cumsum(country_given_lang, axis=1)
    country = np.minimum((cum[language] < rng.random(n)[:, None]).sum(axis=1),
                         cum.shape[1] - 1)
    device = rng.choice(len(DEVICE_NAMES), size=n, p=DEVICE_SHARES)
    age = rng.choice(len(AGE_BUCKETS), size=n, p=AGE_SHARES / AGE_SHARES.sum())
    # Concentrated tastes: a few favourite categories per user.
    taste = rng.dirichlet(np.full(cfg.categories, 0.25), size=n).astype(np.float32)
    activity = np.clip(0.3 * rng.lognormal(0.0, 0.8, size=n), 0.01, 0.95)
    click_bias = rng.normal(0, 0.4, size=n)
    new = rng.random(n) < cfg.new_user_share
    signup_us = np.where(
        new,
        start_us + rng.integers(0, cfg.days * US_PER_DAY, size=n),
        start_us - rng.integers(1, 3 * 365 * US_PER_DAY, size=n),
    )
    order = np.argsort(signup_us, kind="stable")  # ids in signup order
    language, country, device, age = language[order], country[order], device[order], age[order]
    taste, activity, click_bias = taste[order], activity[order], click_bias[order]
    signup_us, new = signup_us[order], new[order]
    signup_day = np.floor_divide(signup_us - start_us, US_PER_DAY)
    # Half of the new users declare their two favourite categories at onboarding.
    declares = new & (rng.random(n) < 0.5)
    favourites = np.argsort(-taste, axis=1)[:, :2]
    declared = np.where(declares[:, None], favourites, -1)
    return Users(language, country, device, age, taste, activity, click_bias, signup_us,
                 signup_day, declared)
