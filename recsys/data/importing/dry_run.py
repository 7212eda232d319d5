"""``recsys data import --dry-run``: the mapping an import would apply, shown on the first rows
of each table's sources, with the rows as the lake would hold them and the first rejections
(the mapping's and the lake's validation's). Nothing is written: no lake is opened or
created, no dead-letter file is written."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from recsys.data.importing.importer import Sources, head_rows, mapped_batches, plan_sources
from recsys.data.importing.mapping import TABLE_SPECS, EventsMapping, ImportMapping
from recsys.data.validation import Rejection, validate


@dataclass
class TablePreview:
    table: str
    files: list[tuple[str, str]]
    mapping: list[str]
    read: int = 0
    valid: int = 0
    rejected: int = 0
    dropped: int = 0
    examples: pd.DataFrame | None = None
    rejections: list[Rejection] = field(default_factory=list)

    def lines(self, shown: int) -> list[str]:
        out = [f"{self.table}: {len(self.files)} source(s): " + ", ".join(
            f"{path} ({fmt})" for path, fmt in self.files[:5]) + (
            f" and {len(self.files) - 5} more" if len(self.files) > 5 else "")]
        out += [f"  {line}" for line in self.mapping]
        out.append(f"  first {self.read:,} records: {self.valid:,} valid, {self.rejected:,} "
                   f"rejected, {self.dropped:,} dropped by the mapping")
        if self.examples is not None and len(self.examples):
            out.append("  as the lake would hold them:")
            with pd.option_context("display.width", 160, "display.max_columns", 20,
                                   "display.max_colwidth", 40):
                out += [f"    {line}" for line in
                        self.examples.head(shown).to_string(index=False).splitlines()]
        if self.rejections:
            out.append("  first rejections:")
            out += [f"    {r.location}: {r.reason}" for r in self.rejections[:shown * 2]]
        return out


def describe_mapping(mapping: ImportMapping, table: str, resolved: dict[str, str] | None
                     ) -> list[str]:
    """One line per lake field the mapping fills, saying from what."""
    section = mapping.table(table)
    spec = TABLE_SPECS[table]
    lines = []
    for name in spec.input_columns:
        if resolved and name in resolved:
            how = f"<- column {resolved[name]!r}"
            if pa.types.is_timestamp(spec.schema.field(name).type):
                how += (f" (format {section.timestamp_format!r}" if section.timestamp_format
                        else f" (unit {section.timestamp_unit}")
                how += f", naive times in {section.timezone})"
            if name == "event_type" and isinstance(section, EventsMapping):
                pairs = ", ".join(f"{k} -> {v}" for k, v in section.event_types.items())
                how += f" ({pairs or 'values already the lake types'}"
                if section.drop_event_types:
                    how += f"; dropped: {', '.join(section.drop_event_types)}"
                how += ")"
        elif name in section.constants:
            how = f"= {section.constants[name]!r} (constant)"
        elif name == "event_id" and isinstance(section, EventsMapping) and \
                section.event_id_from:
            how = (f"<- built from {', '.join(section.event_id_from)} "
                   f"(prefix {section.event_id_prefix!r})")
        else:
            continue
        lines.append(f"{name:<20} {how}")
    return lines


def preview(sources: Sources, mapping: ImportMapping, rows: int = 10_000,
            batch_rows: int = 10_000) -> list[TablePreview]:
    """Each table's mapping shown on its first ``rows`` source records (the whole batch that
    reaches them)."""
    out = []
    for table in sources.tables():
        planned = plan_sources(sources, mapping, table)
        shown = TablePreview(table, [(p, f) for p, f, _ in planned] + (
            [("sql", "query")] if table == "events" and sources.events_sql else []), [])
        for batch, mapped in head_rows(mapped_batches(sources, mapping, table,
                                                      min(batch_rows, rows), planned), rows):
            if not shown.mapping:  # as the first batch's columns resolve it
                shown.mapping = describe_mapping(mapping, table, mapping.table(table).sources(
                    TABLE_SPECS[table], batch.table.column_names))
            result = validate(mapped.table, TABLE_SPECS[table])
            shown.read += batch.table.num_rows + len(batch.rejected)
            shown.dropped += mapped.dropped
            lake_rejected = [Rejection(r.row, r.reason, r.record,
                                       batch.location(int(mapped.rows[r.row])))
                             for r in result.rejected]
            refused = sorted([*batch.rejected, *mapped.rejected, *lake_rejected],
                             key=lambda r: _order(r.location))
            shown.rejected += len(refused)
            shown.valid += result.table.num_rows
            shown.rejections.extend(refused)
            if shown.examples is None and result.table.num_rows:
                examples = result.table.slice(0, 10).to_pandas()
                shown.examples = examples.dropna(axis=1, how="all")  # the fields it fills
        out.append(shown)
    return out


def _order(location: str | None) -> tuple[str, int]:
    source, _, number = (location or "").rpartition(":")
    return (source, int(number)) if number.isdigit() else (location or "", 0)


__all__ = ["preview", "describe_mapping", "TablePreview"]
