"""Row rules of each table: what makes a typed record valid beyond its types.

A rule is a vectorised check over typed Arrow columns that returns a boolean mask of violating
rows and a function that words the reason for one row. Rules never see rows whose required
fields are missing; those are rejected earlier with a reason of their own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.data.schemas import (
    AGE_BUCKETS,
    COUNTRY_PATTERN,
    DEVICES,
    EVENT_TYPES,
    LANGUAGE_PATTERN,
    MAX_RATING,
    TIERS,
)

Columns = Mapping[str, pa.Array]


@dataclass(frozen=True)
class ValidationPolicy:
    """Limits that are not part of the schema itself.

    Attributes:
        now: the reference time for "in the future"; None means the wall clock at validation.
        max_future_skew: how far past ``now`` a timestamp may lie (client clock skew).
        min_timestamp: earliest plausible event timestamp (catalogue dates may be older).
    """

    now: dt.datetime | None = None
    max_future_skew: dt.timedelta = dt.timedelta(hours=1)
    min_timestamp: dt.datetime = field(
        default_factory=lambda: dt.datetime(1990, 1, 1, tzinfo=dt.timezone.utc)
    )

    def latest_allowed(self) -> dt.datetime:
        now = self.now or dt.datetime.now(dt.timezone.utc)
        return now + self.max_future_skew


@dataclass
class Rule:
    mask: np.ndarray
    reason: Callable[[int], str]


def _mask(result: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(result, False).to_numpy(zero_copy_only=False), dtype=bool)


def _value(array: pa.Array, i: int) -> object:
    return array[i].as_py()


def _in_set(cols: Columns, name: str, allowed: tuple[str, ...]) -> Rule:
    array = cols[name]
    mask = _mask(pc.invert(pc.is_in(array, value_set=pa.array(allowed))))
    mask &= _mask(pc.is_valid(array))
    return Rule(mask, lambda i: f"unknown {name} {_value(array, i)!r} "
                               f"(expected one of: {', '.join(allowed)})")


def _matches(cols: Columns, name: str, pattern: str, example: str) -> Rule:
    array = cols[name]
    mask = _mask(pc.invert(pc.match_substring_regex(array, pattern)))
    return Rule(mask, lambda i: f"{name} {_value(array, i)!r} is not a valid code "
                               f"(expected e.g. {example!r})")


def _non_negative(cols: Columns, name: str) -> Rule:
    array = cols[name]
    as_float = pc.cast(array, pa.float64())
    bad = pc.or_(pc.less(as_float, 0), pc.invert(pc.is_finite(as_float)))
    return Rule(_mask(bad), lambda i: f"{name} must be a finite number >= 0, "
                                      f"got {_value(array, i)!r}")


def _time_range(cols: Columns, name: str, policy: ValidationPolicy,
                check_earliest: bool = True) -> list[Rule]:
    """Not in the future; for event times also not implausibly old (catalogues hold old films)."""
    array = cols[name]
    latest = policy.latest_allowed()
    earliest = policy.min_timestamp
    too_late = _mask(pc.greater(array, pa.scalar(latest, type=array.type)))
    too_early = _mask(pc.less(array, pa.scalar(earliest, type=array.type)))
    rules = [
        Rule(too_late, lambda i: f"{name} {_value(array, i).isoformat()} is in the future "
                                 f"(later than {latest.isoformat(timespec='seconds')})"),
    ]
    if check_earliest:
        rules.append(Rule(too_early, lambda i: f"{name} {_value(array, i).isoformat()} is before "
                                  f"{earliest.date().isoformat()}"))
    return rules


def _context_rules(cols: Columns) -> list[Rule]:
    return [
        _in_set(cols, "device", DEVICES),
        _matches(cols, "country", COUNTRY_PATTERN, "US"),
        _matches(cols, "language", LANGUAGE_PATTERN, "en or pt-BR"),
    ]


def event_rules(cols: Columns, policy: ValidationPolicy) -> list[Rule]:
    rating = cols["rating"]
    is_rating = _mask(pc.equal(cols["event_type"], "rating"))
    missing_rating = is_rating & ~_mask(pc.is_valid(rating))
    out_of_range = _mask(pc.or_(pc.less(rating, 0), pc.greater(rating, MAX_RATING)))
    out_of_range |= _mask(pc.invert(pc.is_finite(rating)))
    position = cols["position"]
    return [
        _in_set(cols, "event_type", EVENT_TYPES),
        _non_negative(cols, "watch_time_s"),
        _non_negative(cols, "dwell_time_s"),
        Rule(missing_rating, lambda i: "a rating event needs a rating value"),
        Rule(out_of_range, lambda i: f"rating must lie in [0, {MAX_RATING:g}], "
                                     f"got {_value(rating, i)!r}"),
        Rule(_mask(pc.less(position, 0)), lambda i: f"position must be >= 0, "
                                                    f"got {_value(position, i)}"),
        *_time_range(cols, "timestamp", policy),
        *_context_rules(cols),
    ]


def item_rules(cols: Columns, policy: ValidationPolicy) -> list[Rule]:
    return [
        _matches(cols, "language", LANGUAGE_PATTERN, "en or pt-BR"),
        _non_negative(cols, "duration_s"),
        *_time_range(cols, "created_at", policy, check_earliest=False),
    ]


def user_rules(cols: Columns, policy: ValidationPolicy) -> list[Rule]:
    return [
        *_context_rules(cols),
        _in_set(cols, "age_bucket", AGE_BUCKETS),
        *_time_range(cols, "signup_at", policy, check_earliest=False),
    ]


def exposure_rules(cols: Columns, policy: ValidationPolicy) -> list[Rule]:
    position, propensity = cols["position"], cols["propensity"]
    bad_propensity = _mask(pc.or_(pc.less_equal(propensity, 0), pc.greater(propensity, 1)))
    bad_propensity |= _mask(pc.invert(pc.is_finite(propensity)))
    holdout = cols["holdout"]
    return [
        Rule(_mask(pc.less(position, 0)), lambda i: f"position must be >= 0, "
                                                    f"got {_value(position, i)}"),
        Rule(bad_propensity, lambda i: f"propensity must lie in (0, 1], "
                                       f"got {_value(propensity, i)!r}"),
        Rule(_mask(pc.invert(pc.is_in(holdout, value_set=pa.array([0, 1], holdout.type)))),
             lambda i: f"holdout must be 0 or 1, got {_value(holdout, i)}"),
        _in_set(cols, "tier", TIERS),
        *_time_range(cols, "timestamp", policy),
        *_context_rules(cols),
    ]


def decision_rules(cols: Columns, policy: ValidationPolicy) -> list[Rule]:
    """The ranked list's columns agree in length, and the slots' columns with each other;
    every slot's rank is a distinct place in the list; propensities lie in (0, 1]."""
    n = len(cols["request_id"])
    listed = pc.fill_null(pc.list_value_length(cols["list_item_ids"]), 0).to_numpy(
        zero_copy_only=False)
    slots = pc.fill_null(pc.list_value_length(cols["ranks"]), 0).to_numpy(
        zero_copy_only=False)
    k = pc.fill_null(cols["k"], 0).to_numpy(zero_copy_only=False)
    uneven = np.zeros(n, dtype=bool)
    for name in ("list_scores", "list_categories", "list_ages_s", "list_sources"):
        lengths = pc.list_value_length(cols[name])
        uneven |= _mask(pc.and_(pc.is_valid(lengths), pc.not_equal(lengths, pa.array(listed))))
    for name in ("propensities", "cascade_propensities"):
        uneven |= pc.fill_null(pc.list_value_length(cols[name]), -1).to_numpy(
            zero_copy_only=False) != slots
    ranks = cols["ranks"].to_pylist()
    bad_ranks = np.array([r is not None and (len(set(r)) != len(r) or any(
        x is None or not 0 <= x < m for x in r)) for r, m in zip(ranks, listed)], dtype=bool)
    bad_p = np.zeros(n, dtype=bool)
    for name in ("propensities", "cascade_propensities"):
        for i, values in enumerate(cols[name].to_pylist()):
            if values and any(v is None or not (0 < v <= 1) for v in values):
                bad_p[i] = True
    return [
        Rule((k <= 0) | (slots > np.maximum(k, 0)), lambda i: f"k must be > 0 and at least the "
             f"slots ({int(slots[i])}), got {int(k[i])}"),
        Rule(uneven, lambda i: "the list's columns and the slots' columns must each have one "
                               f"length (the list has {int(listed[i])} items, "
                               f"{int(slots[i])} slots)"),
        Rule(bad_ranks, lambda i: f"ranks must be distinct places in the list of "
                                  f"{int(listed[i])}, got {ranks[i]}"),
        Rule(bad_p, lambda i: "propensities must lie in (0, 1]"),
        *_time_range(cols, "timestamp", policy),
    ]


RULES: dict[str, Callable[[Columns, ValidationPolicy], list[Rule]]] = {
    "events": event_rules,
    "items": item_rules,
    "users": user_rules,
    "exposures": exposure_rules,
    "decisions": decision_rules,
}
