"""The newest version of each catalogue row that came through the stream, in Redis, so that
catalogue updates applied by several workers, redelivered or claimed late, end with the
newest row everywhere.

Keys (``P`` = prefix, the stream's name by convention)::

    P:catalogue:rows        hash item_id -> the row as it came in (JSON)
    P:catalogue:versions    hash item_id -> the stream entry id that carried it

Guarantees: :meth:`CatalogueState.offer` keeps a row only if its entry id is newer than the
one held for the item (atomically, in one script), so an old update arriving after a new one
changes nothing; :meth:`CatalogueState.current` reads rows with their versions, so a writer
can check after writing downstream that what it wrote is still the newest.
"""

from __future__ import annotations

import json
from typing import Iterable, Mapping

# KEYS: rows, versions; ARGV: item id, entry id, row JSON, ... -> the item ids kept
_OFFER = """
local kept = {}
for i = 1, #ARGV, 3 do
  local held = redis.call('HGET', KEYS[2], ARGV[i])
  local newer = true
  if held then
    local hm, hs = string.match(held, '^(%d+)-(%d+)$')
    local nm, ns = string.match(ARGV[i + 1], '^(%d+)-(%d+)$')
    hm, hs, nm, ns = tonumber(hm), tonumber(hs), tonumber(nm), tonumber(ns)
    newer = nm > hm or (nm == hm and ns > hs)
  end
  if newer then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    table.insert(kept, ARGV[i])
  end
end
return kept
"""


class CatalogueState:
    def __init__(self, client, prefix: str):
        self.client = client
        self.rows_key = f"{prefix}:catalogue:rows"
        self.versions_key = f"{prefix}:catalogue:versions"
        self._offer = client.register_script(_OFFER)

    def offer(self, updates: Iterable[tuple[str, str, Mapping]]) -> list[str]:
        """Offer (item id, entry id, row) updates, in any order; returns the item ids whose
        row changed to the offered one."""
        args = [part for item_id, entry_id, row in updates
                for part in (item_id, entry_id, json.dumps(dict(row), default=str))]
        if not args:
            return []
        return [k.decode() if isinstance(k, bytes) else k
                for k in self._offer(keys=[self.rows_key, self.versions_key], args=args)]

    def current(self, item_ids: Iterable[str]) -> dict[str, tuple[dict, str]]:
        """The newest row of each of ``item_ids`` that has one, with its entry id."""
        item_ids = list(item_ids)
        if not item_ids:
            return {}
        pipe = self.client.pipeline(transaction=True)
        pipe.hmget(self.rows_key, item_ids)
        pipe.hmget(self.versions_key, item_ids)
        rows, versions = pipe.execute()
        return {i: (json.loads(r), v.decode()) for i, r, v in zip(item_ids, rows, versions)
                if r is not None and v is not None}


__all__ = ["CatalogueState"]
