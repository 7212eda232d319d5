"""A summary of what a lake holds: row counts, event mix, time range, engagement."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from recsys.data.lake import Lake


@dataclass(frozen=True)
class LakeSummary:
    events: int
    items: int
    users: int
    partitions: int
    event_types: dict[str, int]
    active_users: int
    items_with_events: int
    first_event: str | None
    last_event: str | None

    @property
    def click_through_rate(self) -> float | None:
        shown = self.event_types.get("impression", 0)
        return self.event_types.get("click", 0) / shown if shown else None

    def lines(self) -> list[str]:
        out = [
            f"events     {self.events:>12,}  in {self.partitions:,} daily partitions "
            f"({self.first_event or '-'} .. {self.last_event or '-'})",
            f"items      {self.items:>12,}  ({self.items_with_events:,} with events)",
            f"users      {self.users:>12,}  ({self.active_users:,} with events)",
        ]
        for kind, count in sorted(self.event_types.items(), key=lambda kv: -kv[1]):
            out.append(f"  {kind:<10}{count:>12,}")
        if self.click_through_rate is not None:
            out.append(f"click-through rate {self.click_through_rate:.2%}")
        return out


def describe(lake: Lake) -> LakeSummary:
    """Summarise ``lake`` (reads the event columns it needs, not whole files)."""
    events = lake.events_dataset().to_table(columns=["event_type", "user_id", "item_id",
                                                     "timestamp", "event_date"])
    counts = events.group_by("event_type").aggregate([("event_type", "count")])
    kinds = dict(zip(counts.column("event_type").to_pylist(),
                     counts.column("event_type_count").to_pylist()))
    stamps = pc.min_max(events.column("timestamp")) if events.num_rows else None
    def iso(scalar: pa.Scalar) -> str:
        return scalar.as_py().isoformat(timespec="seconds")
    return LakeSummary(
        events=events.num_rows,
        items=lake.read("items", columns=["item_id"]).num_rows,
        users=lake.read("users", columns=["user_id"]).num_rows,
        partitions=len(pc.unique(events.column("event_date"))),
        event_types=kinds,
        active_users=len(pc.unique(events.column("user_id"))),
        items_with_events=len(pc.unique(events.column("item_id"))),
        first_event=iso(stamps["min"]) if stamps else None,
        last_event=iso(stamps["max"]) if stamps else None,
    )
