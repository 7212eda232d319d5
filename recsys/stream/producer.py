"""Appending checked events and catalogue rows to the stream (the API's side).

Guarantees: :meth:`StreamProducer.submit` checks every record on its own
(:func:`~recsys.stream.records.check_records`), appends the accepted ones in one round trip
in input order, and reports per record: accepted (with its stream entry id), rejected (with
its reasons) or duplicate. Nothing is appended if Redis fails: the caller gets the error and
may retry the whole batch (the workers deduplicate by event id).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Sequence

from recsys.data.arrow_rows import rows_of
from recsys.data.schemas import DECISIONS, EVENTS, EXPOSURES, ITEMS, TableSpec
from recsys.stream.config import StreamConfig
from recsys.stream.envelope import encode
from recsys.stream.records import ACCEPTED, check_records

SPECS: dict[str, TableSpec] = {"event": EVENTS, "item": ITEMS, "exposure": EXPOSURES,
                              "decision": DECISIONS}


@dataclass(frozen=True)
class Receipt:
    """The outcome of one submitted record."""

    index: int
    key: str | None
    status: str
    reason: str = ""
    entry_id: str | None = None


class StreamProducer:
    def __init__(self, client, cfg: StreamConfig):
        self.client, self.cfg = client, cfg

    def submit(self, kind: str, records: Sequence[Any],
               now: dt.datetime | None = None) -> list[Receipt]:
        """Check ``records`` (events or items) and append the valid ones; one receipt each."""
        spec = SPECS[kind]
        checked = check_records(records, spec, now=now)
        rows = rows_of(checked.table)
        accepted = checked.accepted
        accepted_at_us = time.time_ns() // 1000
        entry_ids: list[str] = []
        if accepted:
            pipe = self.client.pipeline(transaction=False)
            for outcome in accepted:
                pipe.xadd(self.cfg.stream, encode(kind, rows[outcome.row], accepted_at_us))
            entry_ids = [e.decode() if isinstance(e, bytes) else e for e in pipe.execute()]
        ids = iter(entry_ids)
        receipts = []
        for outcome in checked.outcomes:
            record = records[outcome.index]
            key = record.get(spec.key) if isinstance(record, dict) else None
            receipts.append(Receipt(outcome.index, key if isinstance(key, str) else None,
                                    outcome.status, outcome.reason,
                                    next(ids) if outcome.status == ACCEPTED else None))
        return receipts

    def append(self, kind: str, records: Sequence[dict]) -> list[str]:
        """Append records a trusted producer built itself (the service's exposures), without
        checking them here: the workers check every entry and dead-letter a bad one with its
        reason. One round trip; returns the entry ids. Raises what Redis raises."""
        return self.append_kinds([(kind, records)])

    def append_kinds(self, batches: Sequence[tuple[str, Sequence[dict]]]) -> list[str]:
        """``append`` for several kinds at once, in the given order, in one round trip."""
        for kind, _ in batches:
            if kind not in SPECS:
                raise ValueError(f"kind must be one of {list(SPECS)}, got {kind!r}")
        accepted_at_us = time.time_ns() // 1000
        pipe = self.client.pipeline(transaction=False)
        for kind, records in batches:
            for record in records:
                pipe.xadd(self.cfg.stream, encode(kind, record, accepted_at_us))
        return [e.decode() if isinstance(e, bytes) else e for e in pipe.execute()]


__all__ = ["StreamProducer", "Receipt", "SPECS"]
