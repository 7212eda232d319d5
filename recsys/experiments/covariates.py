"""CUPED's covariates: each user's pre-exposure value of a Feast feature, point in time at
their first exposure (what Feast would have served then)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# the user's click-through rate over the 30 days before: of four candidates, the one that
# narrowed CTR's interval most in the 12,000-user simulation (docs/experiments.md)
DEFAULT_COVARIATE = "user_features:user_ctr_30d"


def covariates_from_feast(repo: Path, rows: pd.DataFrame,
                          feature: str = DEFAULT_COVARIATE) -> dict[str, float]:
    """user id -> ``feature`` (``view:name``) at the user's ``first_exposure`` in ``rows``
    (``user_outcomes`` rows); NaN where Feast had no value."""
    from recsys.features.training_set import user_values_at

    users = rows[["user_id", "first_exposure"]].drop_duplicates("user_id").rename(
        columns={"first_exposure": "event_timestamp"})
    values = user_values_at(repo, users, feature)
    return dict(zip(users["user_id"], values, strict=True))


__all__ = ["DEFAULT_COVARIATE", "covariates_from_feast"]
