"""Per-record validation of events and catalogue rows arriving one by one or in small batches
(the API, the stream worker): each record is accepted or rejected on its own, with its reasons.

Guarantees of :func:`check_records`:
* Every input position gets exactly one outcome: ``accepted`` (its typed row is in
  ``table``), ``rejected`` (with every reason that applies), or ``duplicate`` (an exact repeat
  of an earlier record in the same batch, which is accepted once).
* A record that is not a mapping, or has unknown fields, is rejected by itself; it never fails
  the rest of the batch.
* The typed rows are the lake's schema (``recsys.data.schemas``), the same checks as the batch
  import (``recsys.data.validation``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import pyarrow as pa

from recsys.data.rules import ValidationPolicy
from recsys.data.schemas import INGESTED_AT, TableSpec
from recsys.data.validation import validate

ACCEPTED, REJECTED, DUPLICATE = "accepted", "rejected", "duplicate"


class Outcome(NamedTuple):  # a tuple: one is built per record, on the API's hot path
    """What became of the record at input position ``index``; ``row`` indexes ``table``."""

    index: int
    status: str
    reason: str = ""
    row: int | None = None


@dataclass(frozen=True)
class CheckedRecords:
    table: pa.Table
    outcomes: list[Outcome]

    @property
    def accepted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == ACCEPTED]

    @property
    def rejected(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == REJECTED]


def input_schema(spec: TableSpec) -> pa.Schema:
    """The columns an input of ``spec`` carries, typed (everything but ``ingested_at``)."""
    return pa.schema([f for f in spec.schema if f.name != INGESTED_AT])


def _shape_problem(record: Any, spec: TableSpec) -> str | None:
    if not isinstance(record, (dict, Mapping)):  # dict first: the ABC check is slow
        return f"expected a JSON object with the {spec.name} fields, got {type(record).__name__}"
    if record.keys() <= spec.input_column_set:  # the common case, checked in C
        return None
    if INGESTED_AT in record:
        return f"field '{INGESTED_AT}' is written by the lake; drop it"
    unknown = sorted(str(k) for k in record if k not in spec.input_column_set)
    if unknown:
        return f"unknown field(s) {unknown}; allowed: {list(spec.input_columns)}"
    return None


def check_records(records: Sequence[Any], spec: TableSpec,
                  now: dt.datetime | None = None) -> CheckedRecords:
    """Validate ``records`` against ``spec``; see the module docstring for the guarantees.
    ``now`` is the reference for "in the future" (default: the wall clock)."""
    outcomes: dict[int, Outcome] = {}
    shaped: list[dict[str, Any]] = []
    positions: list[int] = []
    for i, record in enumerate(records):
        problem = _shape_problem(record, spec)
        if problem:
            outcomes[i] = Outcome(i, REJECTED, problem)
            continue
        shaped.append({name: record.get(name) for name in spec.input_columns})
        positions.append(i)
    table = input_schema(spec).empty_table()
    if shaped:
        result = validate(shaped, spec, ValidationPolicy(now=now))
        table = result.table
        for rejection in result.rejected:
            i = positions[rejection.row]
            outcomes[i] = Outcome(i, REJECTED, rejection.reason)
        for row, sub in enumerate(result.rows):
            i = positions[int(sub)]
            outcomes[i] = Outcome(i, ACCEPTED, row=row)
        for i in positions:
            outcomes.setdefault(i, Outcome(i, DUPLICATE, "an exact repeat of an earlier record "
                                                         "in this batch"))
    return CheckedRecords(table, [outcomes[i] for i in range(len(records))])


__all__ = ["check_records", "input_schema", "CheckedRecords", "Outcome", "ACCEPTED", "REJECTED",
           "DUPLICATE"]
