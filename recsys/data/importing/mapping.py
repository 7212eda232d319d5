"""How a source's columns and values become the lake's fields: the import mapping.

A mapping file (YAML) has one section per table, each optional::

    events:
      columns: {user_id: visitorid, item_id: itemid, timestamp: ts_ms, event_type: event}
      event_types: {view: click, addtocart: like, transaction: watch}
      drop_event_types: [heartbeat]
      timestamp_unit: ms            # s | ms | us | ns | iso | auto (default)
      timezone: UTC                 # for naive times (ISO strings without an offset)
      constants: {device: desktop}
      event_id_from: [visitorid, itemid, ts_ms, event]
    items:
      columns: {item_id: itemid, category: categoryid}
      list_separator: "|"           # CSV/JSON strings split into list fields (tags)
    users: {}

Guarantees:

* Every key is checked on load: an unknown key, a lake field a table does not have, an event
  type outside the schema's vocabulary, an unknown time zone or unit raises
  :class:`~recsys.errors.ConfigError` naming it.
* ``columns`` maps a lake field to a source column; a source column named like a lake field
  and not mapped elsewhere is taken as that field. A field is either a column or a constant.
* ``timestamp_unit: auto`` takes Arrow timestamps as they are and parses strings as ISO 8601;
  a numeric column needs its unit said. Naive times are read in ``timezone`` (an hour the
  zone repeats as its first occurrence, a skipped one moved past the gap).
* ``event_id_from`` builds each event's id from the raw values of those source columns (a
  128-bit hash), so importing the same rows again adds nothing whatever else changed in the
  mapping.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from recsys.config import (
    Check,
    Config,
    config_section,
    non_empty_text,
    one_of,
    optional,
    read_yaml_mapping,
    setting,
    text,
    tuple_of,
)
from recsys.data.schemas import EVENT_TYPES, EVENTS, ITEMS, USERS, TableSpec
from recsys.errors import ConfigError

TIMESTAMP_UNITS = ("auto", "s", "ms", "us", "ns", "iso")
_string_map = Check(lambda v: isinstance(v, Mapping) and all(
    isinstance(k, str) and isinstance(x, str) and x.strip() for k, x in v.items()),
    "a mapping of names to non-empty strings")
_constants = Check(lambda v: isinstance(v, Mapping) and all(
    isinstance(k, str) and (x is None or isinstance(x, (str, int, float, bool)))
    for k, x in v.items()), "a mapping of field names to scalar values")


def _known_zone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


zone = Check(lambda v: isinstance(v, str) and _known_zone(v),
             "an IANA time zone name such as UTC or Europe/Berlin")


@dataclass(frozen=True)
class TableMapping(Config):
    """One table's mapping (see the module docstring)."""

    columns: dict = setting(factory=dict, check=_string_map)
    constants: dict = setting(factory=dict, check=_constants)
    timestamp_unit: str = setting("auto", one_of(TIMESTAMP_UNITS))
    timestamp_format: str | None = setting(None, optional(non_empty_text))
    timezone: str = setting("UTC", zone)
    list_separator: str = setting("|", text)

    def check_fields(self, spec: TableSpec) -> None:
        """ConfigError naming a lake field ``spec`` lacks, or a field given twice."""
        for what, names in (("columns", self.columns), ("constants", self.constants)):
            unknown = sorted(set(names) - set(spec.input_columns))
            if unknown:
                raise ConfigError(f"{spec.name}.{what}: {', '.join(map(repr, unknown))} "
                                  f"{'is not a field' if len(unknown) == 1 else 'are not fields'}"
                                  f" of the lake's {spec.name}; its fields: "
                                  f"{', '.join(spec.input_columns)}")
        both = sorted(set(self.columns) & set(self.constants))
        if both:
            raise ConfigError(f"{spec.name}: {', '.join(map(repr, both))} is both a column and "
                              "a constant; give it one of them")

    def sources(self, spec: TableSpec, available: list[str]) -> dict[str, str]:
        """{lake field: source column}: the mapped columns, then the source's columns named
        like a lake field that nothing else takes."""
        resolved = dict(self.columns)
        taken = set(resolved.values())
        for name in available:
            if (name in spec.input_column_set and name not in resolved
                    and name not in self.constants and name not in taken):
                resolved[name] = name
        return resolved


@dataclass(frozen=True)
class EventsMapping(TableMapping):
    """The events' mapping: a table mapping with event types and built ids."""

    event_types: dict = setting(factory=dict, check=_string_map)
    drop_event_types: tuple = setting((), tuple_of(text))
    event_id_from: tuple = setting((), tuple_of(non_empty_text))
    event_id_prefix: str = setting("", text)

    def check_together(self) -> None:
        wrong = {k: v for k, v in self.event_types.items() if v not in EVENT_TYPES}
        if wrong:
            source, target = next(iter(wrong.items()))
            raise ConfigError(f"events.event_types: {source!r} -> {target!r}: {target!r} is not "
                              f"an event type; the lake's types: {', '.join(EVENT_TYPES)}")
        both = sorted(set(self.event_types) & set(self.drop_event_types))
        if both:
            raise ConfigError(f"events: {both[0]!r} is both mapped (event_types) and dropped "
                              "(drop_event_types)")
        if self.event_id_from and ("event_id" in self.columns or "event_id" in self.constants):
            raise ConfigError("events: event_id_from builds event_id, which is also mapped; "
                              "give one of them")


def _source_values_as_text(section: Mapping) -> dict:
    """Event type values in YAML may read as numbers (``1: click``); a source's values are
    compared as text."""
    out = dict(section)
    if isinstance(out.get("event_types"), Mapping):
        out["event_types"] = {str(k): v for k, v in out["event_types"].items()}
    if isinstance(out.get("drop_event_types"), list):
        out["drop_event_types"] = [str(v) for v in out["drop_event_types"]]
    return out


TABLE_SPECS: dict[str, TableSpec] = {"events": EVENTS, "items": ITEMS, "users": USERS}


@dataclass(frozen=True)
class ImportMapping(Config):
    """The whole mapping: one section per table."""

    events: EventsMapping = setting(factory=EventsMapping)
    items: TableMapping = setting(factory=TableMapping)
    users: TableMapping = setting(factory=TableMapping)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, spec in TABLE_SPECS.items():
            self.table(name).check_fields(spec)

    def table(self, name: str) -> TableMapping:
        return getattr(self, name)

    @classmethod
    def from_dict(cls, raw: Any, name: str | None = None) -> ImportMapping:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"an import mapping must be a mapping of tables, got {raw!r}")
        unknown = sorted(set(raw) - set(TABLE_SPECS))
        if unknown:
            raise ConfigError(f"unknown key(s) in the import mapping: {', '.join(unknown)}; "
                              f"known: {', '.join(TABLE_SPECS)}")
        sections = {}
        for table, section in raw.items():
            kind = EventsMapping if table == "events" else TableMapping
            section = {} if section is None else section
            if table == "events" and isinstance(section, Mapping):
                section = _source_values_as_text(section)
            sections[table] = config_section(kind, section, table)
        return cls(**sections)

    @classmethod
    def from_yaml(cls, path: Path) -> ImportMapping:
        return cls.from_dict(read_yaml_mapping(path, "of tables (events, items, users)"))

    def with_changes(self, table: str, **changes: Any) -> ImportMapping:
        """A copy with ``changes`` made to one table's section (dicts merged into the
        section's, other values replacing), checked again."""
        section = self.table(table)
        merged = {}
        for key, value in changes.items():
            current = getattr(section, key)
            merged[key] = {**current, **value} if isinstance(current, dict) else value
        return dataclasses.replace(self, **{table: section.replace(**merged)})

    def to_dict(self) -> dict[str, Any]:
        return {name: self.table(name).to_dict() for name in TABLE_SPECS}


__all__ = ["ImportMapping", "TableMapping", "EventsMapping", "TIMESTAMP_UNITS", "TABLE_SPECS"]
