"""The item catalogue as the feature build leaves it: the latest row of every item.

Read by training (the items the retrieval index holds), by the recommendation service (the
catalogue it embeds with the item tower) and by the demo.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from recsys.errors import SourceError

CATALOGUE_COLUMNS = ["item_id", "item_category", "item_language", "item_tags",
                     "item_created_at_s"]


def read_catalogue(data_dir: Path) -> pd.DataFrame:
    """The latest catalogue row of every item (by event time, then creation time)."""
    path = data_dir / "item_catalogue"
    if not path.is_dir():
        raise SourceError(f"{path} not found; run `recsys features build` first")
    rows = pq.read_table(path).to_pandas()
    rows = rows.sort_values(["item_id", "event_timestamp", "created_timestamp"])
    return rows.drop_duplicates("item_id", keep="last")[CATALOGUE_COLUMNS].reset_index(drop=True)


__all__ = ["CATALOGUE_COLUMNS", "read_catalogue"]
