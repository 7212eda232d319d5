"""`recsys data import`'s mapping flags laid over its --mapping file (the flags win)."""

from __future__ import annotations

import argparse

from recsys.data.importing.mapping import TABLE_SPECS, ImportMapping
from recsys.errors import ConfigError


def _pair(flag: str, text: str, shape: str) -> tuple[str, str]:
    left, sep, right = text.partition("=")
    if not sep or not left.strip():
        raise ConfigError(f"{flag} {text!r}: expected {shape}")
    return left.strip(), right


def _table_field(flag: str, text: str, shape: str) -> tuple[str, str, str]:
    target, value = _pair(flag, text, shape)
    table, dot, name = target.partition(".")
    if not dot or table not in TABLE_SPECS or not name:
        raise ConfigError(f"{flag} {text!r}: expected {shape}, where TABLE is one of "
                          f"{', '.join(TABLE_SPECS)}")
    return table, name, value


def mapping_from_flags(args: argparse.Namespace) -> ImportMapping:
    """The --mapping file's mapping (or an empty one) with the flags' changes, checked."""
    mapping = ImportMapping.from_yaml(args.mapping) if args.mapping else ImportMapping()
    columns: dict[str, dict[str, str]] = {}
    for text in args.column:
        table, name, column = _table_field("--column", text, "TABLE.FIELD=COLUMN")
        if not column.strip():
            raise ConfigError(f"--column {text!r}: the source column is empty")
        columns.setdefault(table, {})[name] = column
    constants: dict[str, dict[str, str]] = {}
    for text in args.constant:
        table, name, value = _table_field("--constant", text, "TABLE.FIELD=VALUE")
        constants.setdefault(table, {})[name] = value
    for table in TABLE_SPECS:
        changes = {k: v for k, v in (("columns", columns.get(table)),
                                     ("constants", constants.get(table))) if v}
        if changes:
            mapping = mapping.with_changes(table, **changes)
    events: dict = {}
    if args.event_type:
        events["event_types"] = dict(_pair("--event-type", t, "VALUE=TYPE")
                                     for t in args.event_type)
    if args.drop_event_type:
        events["drop_event_types"] = (*mapping.events.drop_event_types, *args.drop_event_type)
    for key in ("event_id_from", "timestamp_unit", "timestamp_format", "timezone"):
        if getattr(args, key) is not None:
            events[key] = getattr(args, key)
    return mapping.with_changes("events", **events) if events else mapping


__all__ = ["mapping_from_flags"]
