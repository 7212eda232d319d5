"""The stream's state in Redis: each user's session state and each item's bucketed counters,
updated idempotently by event id.

Guarantees:
* Applying the same event twice (a redelivery after a crash, a duplicate from a client) has
  the effect of applying it once, for as long as ``dedupe_ttl_s``: a user's state, its
  version and its events' "applied" markers change together in one script call that
  compares the version with the one read (one call per batch for all its users), an item's
  counters and its events' markers in one script (one call per ``ITEMS_PER_CALL`` events).
* Concurrent workers never lose each other's updates: a user whose state another worker
  changed since it was read is read and applied again; the batch's other users are done.
* A user without a state here (new to this Redis, or expired after ``state_ttl_s``) starts
  from the ``seed`` row given to :meth:`apply` (the online store's ``user_session``), so a
  first event adds to the history the batch job left rather than replacing it.
* Reads return a version with each state; it grows with every update, so a writer can tell
  whether what it pushed downstream is still the newest. :meth:`apply` returns the states it
  wrote with their versions, so the first push of a batch reads nothing back.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable, Mapping

import orjson

from recsys.data.records import Event, order_key
from recsys.features.item_counters import bucket_of, item_stream_row, kinds_of, oldest_kept_bucket
from recsys.stream.config import StreamConfig
from stream_worker.session_state import HISTORY_EVENT_TYPES, SessionState

# Compare-and-set of users' states. KEYS per user: state, version, its events' markers; ARGV:
# state ttl, marker ttl, number of users, then per user: the version read ("" for none), the
# new state, its version, its number of markers. A user whose version changed since it was
# read is left alone; returns those users' positions (1-based).
_USERS_SCRIPT = """
local raced = {}
local k, a = 1, 4
for u = 1, tonumber(ARGV[3]) do
  local n = tonumber(ARGV[a + 3])
  if (redis.call('GET', KEYS[k + 1]) or '') == ARGV[a] then
    redis.call('SET', KEYS[k], ARGV[a + 1], 'EX', ARGV[1])
    redis.call('SET', KEYS[k + 1], ARGV[a + 2], 'EX', ARGV[1])
    for m = k + 2, k + 1 + n do redis.call('SET', KEYS[m], '1', 'EX', ARGV[2]) end
  else
    raced[#raced + 1] = u
  end
  k = k + 2 + n
  a = a + 4
end
return raced
"""

# One call per batch. KEYS: the marker and the counters of each event, then the counters of
# each distinct item; ARGV: marker ttl, counters ttl, then per event its ts_us, its number of
# fields and the fields. An event whose marker is set is skipped. Returns each distinct item's
# counters (HGETALL) after the batch, in KEYS order.
_ITEMS_SCRIPT = """
local n_events = tonumber(ARGV[3])
local a = 4
for e = 1, n_events do
  local ts, n = ARGV[a], tonumber(ARGV[a + 1])
  local marker, counters = KEYS[2 * e - 1], KEYS[2 * e]
  if redis.call('SET', marker, '1', 'NX', 'EX', ARGV[1]) then
    for i = a + 2, a + 1 + n do redis.call('HINCRBY', counters, ARGV[i], 1) end
    local last = redis.call('HGET', counters, 'last_us')
    if (not last) or tonumber(ts) > tonumber(last) then
      redis.call('HSET', counters, 'last_us', ts)
    end
    redis.call('HINCRBY', counters, 'version', 1)
    redis.call('EXPIRE', counters, ARGV[2])
  end
  a = a + 2 + n
end
local out = {}
for k = 2 * n_events + 1, #KEYS do out[#out + 1] = redis.call('HGETALL', KEYS[k]) end
return out
"""
# KEYS: counters; returns each one's version (false where it has none).
_VERSIONS_SCRIPT = """
local out = {}
for k = 1, #KEYS do out[k] = redis.call('HGET', KEYS[k], 'version') end
return out
"""
ITEMS_PER_CALL = 512  # events per script call: Redis runs a script alone, so keep it short


MAX_RACES = 100  # compare-and-set rounds before the batch fails (and is retried)


class StreamState:
    def __init__(self, client, cfg: StreamConfig, prefix: str | None = None):
        """Keys start with ``prefix`` (default: the stream's name), so streams sharing a Redis
        keep separate state."""
        self.client, self.cfg, self.prefix = client, cfg, prefix or cfg.stream
        self._users_script = client.register_script(_USERS_SCRIPT)
        self._items_script = client.register_script(_ITEMS_SCRIPT)
        self._versions_script = client.register_script(_VERSIONS_SCRIPT)

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}:session:{user_id}"

    def _version_key(self, user_id: str) -> str:
        return f"{self.prefix}:session-version:{user_id}"

    def _item_key(self, item_id: str) -> str:
        return f"{self.prefix}:item-counters:{item_id}"

    def _marker(self, scope: str, event_id: str) -> str:
        return f"{self.prefix}:applied:{scope}:{event_id}"

    def apply(self, events: Iterable[Event], categories: Mapping[str, str | None],
              seed: Callable[[list[str]], Mapping[str, Mapping]] | None = None
              ) -> tuple[dict[str, tuple[SessionState, int]], dict[str, tuple[dict, int]]]:
        """Apply ``events`` (any order, repeats allowed) to the user states and item
        counters. Returns the states this call changed, with their versions (users whose
        events were all applied before are absent), and the ``item_stream`` rows of every
        item of ``events`` with their versions, as they stood after this call. ``seed``
        gives the ``user_session`` rows (the online store's) that users without a state here
        start from; without it, or without a row, a user starts empty."""
        by_user: dict[str, dict[str, Event]] = defaultdict(dict)
        for event in events:
            by_user[event.user_id][event.event_id] = event
        written = self._apply_users(by_user, categories, seed)
        items = self._apply_items([e for evs in by_user.values() for e in evs.values()])
        return written, items

    def _apply_users(self, by_user: Mapping[str, Mapping[str, Event]],
                     categories: Mapping[str, str | None],
                     seed: Callable[[list[str]], Mapping[str, Mapping]] | None = None
                     ) -> dict[str, tuple[SessionState, int]]:
        """The users' states and markers, each user compare-and-set on its version (one read
        round trip and one script call per round); the users whose state another worker
        changed meanwhile are read and applied again, the others are done. Returns the states
        written, by user."""
        rows: dict[str, Mapping] = {}  # seed rows read so far (kept over rounds)
        asked: set[str] = set()
        written: dict[str, tuple[SessionState, int]] = {}
        users = list(by_user)
        for _ in range(MAX_RACES):
            events = [e for u in users for e in by_user[u].values()]
            pipe = self.client.pipeline(transaction=False)
            pipe.mget([self._user_key(u) for u in users])
            pipe.mget([self._version_key(u) for u in users])
            pipe.mget([self._marker("session", e.event_id) for e in events])
            raws, versions, marks = pipe.execute()
            seen = {e.event_id for e, mark in zip(events, marks) if mark is not None}
            stateless = [u for u, raw in zip(users, raws) if raw is None and u not in asked]
            if seed is not None and stateless:  # only users new to this Redis
                rows.update(seed(stateless))
                asked.update(stateless)
            updates, keys = {}, []
            args: list = [self.cfg.state_ttl_s, self.cfg.dedupe_ttl_s, 0]
            for user, raw, version in zip(users, raws, versions):
                fresh = [e for e in by_user[user].values() if e.event_id not in seen]
                if not fresh:
                    continue
                state = (SessionState.from_json(orjson.loads(raw)) if raw
                         else SessionState.from_feature_row(rows[user])
                         if user in rows else SessionState())
                for event in sorted(fresh, key=order_key):
                    state.add(event, categories.get(event.item_id),
                              self.cfg.history_length, self.cfg.session_gap_s)
                updates[user] = state
                keys += [self._user_key(user), self._version_key(user),
                         *(self._marker("session", e.event_id) for e in fresh)]
                args += [version or b"", orjson.dumps(state.to_json()), state.version,
                         len(fresh)]
            if not updates:
                return written
            args[2] = len(updates)
            raced = {int(k) - 1 for k in self._users_script(keys=keys, args=args)}
            names = list(updates)
            written.update((u, (updates[u], updates[u].version))
                           for k, u in enumerate(names) if k not in raced)
            if not raced:
                return written
            users = [names[k] for k in sorted(raced)]
        raise RuntimeError(f"{MAX_RACES} rounds in a row raced other workers on the "
                           f"states of {len(users)} users; the batch is retried")

    def _apply_items(self, events: list[Event]) -> dict[str, tuple[dict, int]]:
        """Count the events not counted before, ``ITEMS_PER_CALL`` events per script call,
        and return the ``item_stream`` rows of their items with their versions."""
        ttl = str(self.cfg.dedupe_ttl_s)
        counters_ttl = str(max(self.cfg.state_ttl_s, 2 * 86_400))
        out: dict[str, tuple[dict, int]] = {}
        for start in range(0, len(events), ITEMS_PER_CALL):
            chunk = events[start:start + ITEMS_PER_CALL]
            items = list(dict.fromkeys(e.item_id for e in chunk))
            keys, args = [], [ttl, counters_ttl, str(len(chunk))]
            for event in chunk:
                keys += [self._marker("item", event.event_id), self._item_key(event.item_id)]
                fields = [f"{kind}:{bucket_of(event.ts_us)}"
                          for kind in kinds_of(event.event_type, HISTORY_EVENT_TYPES)]
                args += [str(event.ts_us), str(len(fields)), *fields]
            keys += [self._item_key(i) for i in items]
            hashes = self._items_script(keys=keys, args=args)
            out.update(self._rows_from(
                items, [dict(zip(h[::2], h[1::2])) for h in hashes]))
        return out

    def sessions(self, user_ids: Iterable[str]) -> dict[str, tuple[SessionState, int]]:
        """Current states of ``user_ids`` (those that have one) with their versions."""
        user_ids = list(user_ids)
        raws = self.client.mget([self._user_key(u) for u in user_ids]) if user_ids else []
        out = {}
        for user_id, raw in zip(user_ids, raws):
            if raw:
                state = SessionState.from_json(orjson.loads(raw))
                out[user_id] = (state, state.version)
        return out

    def session_versions(self, user_ids: Iterable[str]) -> dict[str, int]:
        """The versions of the states of ``user_ids`` (those that have one): one MGET of the
        version keys written beside the states; a state written without one (by an earlier
        release) is read whole."""
        user_ids = list(user_ids)
        if not user_ids:
            return {}
        got = self.client.mget([self._version_key(u) for u in user_ids])
        out = {u: int(v) for u, v in zip(user_ids, got) if v is not None}
        missing = [u for u, v in zip(user_ids, got) if v is None]
        if missing:
            out.update({u: version for u, (_, version) in self.sessions(missing).items()})
        return out

    def item_versions(self, item_ids: Iterable[str]) -> dict[str, int]:
        """The versions of the counters of ``item_ids`` (those that have them), in one
        script call."""
        item_ids = list(item_ids)
        if not item_ids:
            return {}
        got = self._versions_script(keys=[self._item_key(i) for i in item_ids])
        return {i: int(v) for i, v in zip(item_ids, got) if v}

    def item_rows(self, item_ids: Iterable[str]) -> dict[str, tuple[dict, int]]:
        """``item_stream`` rows of ``item_ids`` (those with counters) with their versions;
        buckets too old for any window are deleted on the way."""
        item_ids = list(item_ids)
        pipe = self.client.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.hgetall(self._item_key(item_id))
        return self._rows_from(item_ids, pipe.execute())

    def _rows_from(self, item_ids: list[str], hashes: list[dict]
                   ) -> dict[str, tuple[dict, int]]:
        """``item_stream`` rows from the items' counter hashes; buckets too old for any
        window are deleted on the way."""
        out, stale = {}, None
        for item_id, raw in zip(item_ids, hashes):
            if not raw or b"last_us" not in raw:
                continue
            last_us = int(raw[b"last_us"])
            oldest = oldest_kept_bucket(last_us)
            counts, old = {}, []
            for name, value in raw.items():
                kind, _, bucket = name.decode().partition(":")
                if not bucket:
                    continue
                if int(bucket) < oldest:
                    old.append(name)
                else:
                    counts[(kind, int(bucket))] = int(value)
            if old:
                stale = stale or self.client.pipeline(transaction=False)
                stale.hdel(self._item_key(item_id), *old)
            out[item_id] = (item_stream_row(item_id, counts, last_us), int(raw[b"version"]))
        if stale is not None:
            stale.execute()
        return out


__all__ = ["StreamState"]
