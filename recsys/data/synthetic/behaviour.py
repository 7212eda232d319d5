"""One simulated day of traffic: who comes, what they are shown, what they do with it.

The model, in order:
* Each user who has signed up is active with their own daily probability (heavy-tailed across
  users); new users are active on the day they sign up, after signing up. An active user has
  1 + Poisson sessions; sessions start mostly in the evening.
* A session shows a geometric number of impressions. Each slot's category comes from the user's
  taste (90%) or the platform's mix (10%); its language is the user's (85%) or any; the item
  within (category, language) is drawn by popularity: Zipf base weight x a novelty boost for the
  first days x, for surging new items, top-item weight that fades over days. A session is only
  shown items that existed when it started.
* Click probability rises with the user's taste for the category, a language match and the
  item's latent quality, and falls with the slot's position. A click opens the item: a watch of
  a Beta-distributed fraction of its duration (higher for better matches), a dwell time on the
  item, and then a like (likelier after watching most of it) or a skip (watched < 20%).
* Events are impression, click, watch, like and skip, with session ids, positions and the
  device, country and language of the request. Nothing is emitted at or after the window end.

Guarantees: the output is a pure function of (config, day); days are independent streams.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.data.schemas import EVENTS, TIMESTAMP
from recsys.data.synthetic.config import SyntheticConfig
from recsys.data.synthetic.population import US_PER_DAY, Items, Users
from recsys.data.synthetic.responses import (
    SKIP_BELOW_FRACTION,
    affinity,
    click_probability,
    like_probability,
    mean_watch_fraction,
    watch_fraction,
)
from recsys.data.synthetic.vocabulary import DEVICE_NAMES, LANGUAGES, country_table

US = 1_000_000
TASTE_SHARE = 0.9
OWN_LANGUAGE_SHARE = 0.85
NOVELTY_BOOST, NOVELTY_DAYS = 4.0, 2.0
SURGE_DAYS = 3.0


class ItemSampler:
    """Popularity-weighted draws of items within (category, language) pools for one day."""

    def __init__(self, items: Items, day: int, n_categories: int, older_only: bool = False):
        age = (day - items.created_day).astype(np.float64)
        if older_only:  # only items that existed when the day began
            age = np.where(items.created_day >= day, -1.0, age)
        weight = items.base_weight * (1.0 + NOVELTY_BOOST * np.exp(-np.maximum(age, 0)
                                                                   / NOVELTY_DAYS))
        weight = np.where(items.surge, np.maximum(weight, np.exp(-np.maximum(age, 0)
                                                                  / SURGE_DAYS)), weight)
        weight = np.where(age >= 0, weight, 0.0)  # not yet created by the end of the day
        n_lang = len(LANGUAGES)
        pool = items.category * n_lang + items.language
        self.order = np.argsort(pool, kind="stable")
        self.cum = np.cumsum(weight[self.order])
        totals = np.bincount(pool, weights=weight, minlength=n_categories * n_lang)
        self.pool_total = totals
        self.pool_start = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
        cat_totals = totals.reshape(n_categories, n_lang)
        self.cat_total = cat_totals.sum(axis=1)
        self.cat_start = self.pool_start.reshape(n_categories, n_lang)[:, 0]
        self.n_lang = n_lang

    def draw(self, category: np.ndarray, language: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
        pool = category * self.n_lang + language
        empty = self.pool_total[pool] <= 0
        start = np.where(empty, self.cat_start[category], self.pool_start[pool])
        total = np.where(empty, self.cat_total[category], self.pool_total[pool])
        target = start + rng.random(len(pool)) * total
        pos = np.searchsorted(self.cum, target, side="right")
        return self.order[np.minimum(pos, len(self.order) - 1)]


def draw_category_and_language(taste: np.ndarray, own_language: np.ndarray,
                               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """What each slot looks for: ``taste`` [slots, categories] (each row the slot's user's
    taste shares) and ``own_language`` [slots] give a category drawn from the taste
    (``TASTE_SHARE`` of the time; else any category) and the user's language
    (``OWN_LANGUAGE_SHARE``; else any). Guarantees the generator's draw order, so the
    synthetic history depends on the seed alone."""
    n, n_categories = taste.shape
    by_taste = np.minimum((np.cumsum(taste, axis=1) < rng.random(n)[:, None]).sum(axis=1),
                          n_categories - 1)
    category = np.where(rng.random(n) < TASTE_SHARE, by_taste,
                        rng.integers(0, n_categories, n))
    language = np.where(rng.random(n) < OWN_LANGUAGE_SHARE, own_language,
                        rng.integers(0, len(LANGUAGES), n))
    return category, language


def _string_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(numbers.astype(np.int64)), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, text, "")


def simulate_day(cfg: SyntheticConfig, day: int, users: Users, items: Items,
                 user_ids: pa.Array, item_ids: pa.Array) -> pa.Table:
    """All events of window day ``day`` (0-based), in generation order."""
    rng = np.random.default_rng([cfg.seed, 1, day])
    start_us = int(cfg.window_start.timestamp() * US) + day * US_PER_DAY
    end_us = int(cfg.window_end.timestamp() * US)

    # Who is active, and their sessions.
    signed = users.signup_day <= day
    joins_today = users.signup_day == day
    active = signed & ((rng.random(users.n) < users.activity) | joins_today)
    who = np.flatnonzero(active)
    n_sess = 1 + rng.poisson(cfg.mean_extra_sessions * users.activity[who] / 0.3)
    sess_user = np.repeat(who, n_sess)
    hours = np.where(rng.random(len(sess_user)) < 0.6,
                     np.mod(rng.normal(20.0, 2.5, len(sess_user)), 24.0),
                     rng.uniform(0, 24, len(sess_user)))
    sess_start = start_us + (hours * 3600 * US).astype(np.int64)
    sess_start = np.maximum(sess_start, users.signup_us[sess_user] + 60 * US)
    sess_device = np.where(rng.random(len(sess_user)) < 0.85, users.device[sess_user],
                           rng.integers(0, len(DEVICE_NAMES), len(sess_user)))

    # Impression slots.
    length = rng.geometric(1.0 / cfg.mean_session_length, size=len(sess_user))
    slot_sess = np.repeat(np.arange(len(sess_user)), length)
    first_slot = np.concatenate([[0], np.cumsum(length)[:-1]])
    position = np.arange(len(slot_sess)) - np.repeat(first_slot, length)
    u = sess_user[slot_sess]
    n_cat = cfg.categories
    category, language = draw_category_and_language(users.taste[u], users.language[u], rng)
    item = ItemSampler(items, day, n_cat).draw(category, language, rng)
    # An item created today can only fill slots of sessions that start after it exists.
    too_new = np.flatnonzero(items.created_us[item] > sess_start[slot_sess])
    if len(too_new):
        older = ItemSampler(items, day, n_cat, older_only=True)
        if older.cum[-1] > 0:
            item[too_new] = older.draw(category[too_new], language[too_new], rng)
    category = items.category[item]

    # Responses (responses.py: the model the user simulator shares).
    item_affinity = affinity(users, items, u, item, n_cat)
    clicked = rng.random(len(u)) < click_probability(users, items, u, item, position, n_cat)
    frac = watch_fraction(mean_watch_fraction(users, items, u, item, n_cat), rng)
    watch_s = np.where(clicked, frac * items.duration_s[item], 0.0)
    dwell_s = np.where(clicked, watch_s + rng.lognormal(2.0, 0.7, len(u)), 0.0)
    liked = clicked & (rng.random(len(u)) < like_probability(frac, item_affinity))
    skipped = clicked & ~liked & (frac < SKIP_BELOW_FRACTION)

    # Time line: each slot takes a glance, plus the dwell time when opened.
    spent_us = ((2.0 + rng.exponential(4.0, len(u)) + dwell_s) * US).astype(np.int64)
    cum = np.cumsum(spent_us)
    before = cum - spent_us - np.repeat(cum[first_slot] - spent_us[first_slot], length)
    t_imp = sess_start[slot_sess] + before
    shown = t_imp >= items.created_us[item]  # guard: nothing is shown before it exists

    t_click = t_imp + US
    t_watch = t_click + (watch_s * US).astype(np.int64)
    kinds = [
        ("impression", shown, t_imp),
        ("click", shown & clicked, t_click),
        ("watch", shown & clicked & (watch_s > 0), t_watch),
        ("like", shown & liked, t_watch + US),
        ("skip", shown & skipped, t_watch + US // 2),
    ]
    countries, _ = country_table()
    parts = []
    for kind, mask, when in kinds:
        idx = np.flatnonzero(mask & (when < end_us))
        parts.append((kind, idx, when[idx]))
    slot = np.concatenate([idx for _, idx, _ in parts])
    kind_code = np.concatenate([np.full(len(idx), k, dtype=np.int32)
                                for k, (_, idx, _) in enumerate(parts)])
    when = np.concatenate([t for _, _, t in parts])
    order = np.lexsort((kind_code, when))
    slot, kind_code, when = slot[order], kind_code[order], when[order]
    is_kind = {name: kind_code == k for k, (name, _, _) in enumerate(parts)}
    su = u[slot]

    def names(codes: np.ndarray, vocab) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)),
                                              pa.array(list(vocab))).cast(pa.string())

    def only(mask: np.ndarray, values: np.ndarray) -> pa.Array:
        return pa.array(values.astype(np.float32), mask=~mask, type=pa.float32())

    columns = {
        "event_id": _string_ids(f"ev{cfg.seed}-{day:04d}-", np.arange(len(slot)), 9),
        "user_id": user_ids.take(pa.array(su)),
        "item_id": item_ids.take(pa.array(item[slot])),
        "event_type": names(kind_code, [name for name, _, _ in parts]),
        "timestamp": pa.array(when, type=pa.int64()).cast(TIMESTAMP),
        "session_id": _string_ids(f"se{cfg.seed}-{day:04d}-", slot_sess[slot], 7),
        "watch_time_s": only(is_kind["watch"], watch_s[slot]),
        "dwell_time_s": only(is_kind["click"], dwell_s[slot]),
        "rating": pa.nulls(len(slot), pa.float32()),
        "position": pa.array(position[slot].astype(np.int32)),
        "device": names(sess_device[slot_sess[slot]], DEVICE_NAMES),
        "country": names(users.country[su], countries),
        "language": names(users.language[su], LANGUAGES),
    }
    return pa.table(columns, schema=pa.schema([EVENTS.schema.field(c) for c in columns]))
