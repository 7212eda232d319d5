"""The event stream as the console shows it: how long it is, how far behind its workers are,
how fresh its newest entry is, and how many records were dead-lettered.

Works on Redis 6.2 (the embedded server) and 7: the workers' lag is the age of the oldest
entry the consumer group has not read yet (0 when it has read everything), found with one
XRANGE after the group's last delivered id, so it needs no ``lag`` field of XINFO GROUPS.

Guarantees: a few O(1) or O(log n) Redis calls; a stream or group that does not exist yet
gives zeros; nothing is written.
"""

from __future__ import annotations

import time


def _ms(entry_id) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(text.split("-", 1)[0])


def _name(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def stream_stats(client, stream: str, group: str, dead_letter_stream: str,
                 now_s: float | None = None) -> dict:
    """``length``, ``newest_age_s`` (since the last append; None when empty), ``pending``
    (read by a worker, not yet acknowledged), ``lag_s`` (age of the oldest unread entry),
    ``dead_letters``."""
    now_ms = (time.time() if now_s is None else now_s) * 1000
    if not client.exists(stream):
        return {"length": 0, "newest_age_s": None, "pending": 0, "lag_s": 0.0,
                "dead_letters": int(client.xlen(dead_letter_stream) or 0)}
    info = client.xinfo_stream(stream)
    last = info.get("last-generated-id")
    groups = {_name(g["name"]): g for g in client.xinfo_groups(stream)}
    mine = groups.get(group)
    lag_s = 0.0
    if mine is None:  # no worker has joined: everything is unread
        first = client.xrange(stream, count=1)
        lag_s = (now_ms - _ms(first[0][0])) / 1000 if first else 0.0
    elif _name(mine["last-delivered-id"]) != _name(last):
        unread = client.xrange(stream, min=f"({_name(mine['last-delivered-id'])}", count=1)
        lag_s = (now_ms - _ms(unread[0][0])) / 1000 if unread else 0.0
    return {"length": int(info.get("length", 0)),
            "newest_age_s": None if last is None or _name(last) == "0-0"
            else round(max(now_ms - _ms(last), 0) / 1000, 3),
            "pending": int(mine["pending"]) if mine is not None else 0,
            "lag_s": round(max(lag_s, 0.0), 3),
            "dead_letters": int(client.xlen(dead_letter_stream) or 0)}


__all__ = ["stream_stats"]
