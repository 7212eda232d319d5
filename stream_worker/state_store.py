"""The stream's state in Redis: each user's session state and each item's bucketed counters,
updated idempotently by event id.

Guarantees:
* Applying the same event twice (a redelivery after a crash, a duplicate from a client) has
  the effect of applying it once, for as long as ``dedupe_ttl_s``: a user's state and the
  event's "applied" markers change in one transaction (WATCH/MULTI on the state and the
  markers, one transaction per batch), an item's counters and its marker in one Lua
  script.
* Concurrent workers never lose each other's updates: a transaction that raced another one
  is retried on the new state.
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

# KEYS: marker, counters; ARGV: marker ttl, counters ttl, ts_us, field...
_ITEM_SCRIPT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for i = 4, #ARGV do redis.call('HINCRBY', KEYS[2], ARGV[i], 1) end
local last = redis.call('HGET', KEYS[2], 'last_us')
if (not last) or tonumber(ARGV[3]) > tonumber(last) then
  redis.call('HSET', KEYS[2], 'last_us', ARGV[3])
end
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


MAX_RACES = 100  # optimistic transactions retried before the batch fails (and is retried)


class StreamState:
    def __init__(self, client, cfg: StreamConfig, prefix: str | None = None):
        """Keys start with ``prefix`` (default: the stream's name), so streams sharing a Redis
        keep separate state."""
        self.client, self.cfg, self.prefix = client, cfg, prefix or cfg.stream
        self._item_script = client.register_script(_ITEM_SCRIPT)

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}:session:{user_id}"

    def _item_key(self, item_id: str) -> str:
        return f"{self.prefix}:item-counters:{item_id}"

    def _marker(self, scope: str, event_id: str) -> str:
        return f"{self.prefix}:applied:{scope}:{event_id}"

    def apply(self, events: Iterable[Event], categories: Mapping[str, str | None],
              seed: Callable[[list[str]], Mapping[str, Mapping]] | None = None
              ) -> dict[str, tuple[SessionState, int]]:
        """Apply ``events`` (any order, repeats allowed) to the user states and item
        counters; returns the states this call changed, with their versions (users whose
        events were all applied before are absent). ``seed`` gives the ``user_session`` rows
        (the online store's) that users without a state here start from; without it, or
        without a row, a user starts empty."""
        by_user: dict[str, dict[str, Event]] = defaultdict(dict)
        for event in events:
            by_user[event.user_id][event.event_id] = event
        written = self._apply_users(by_user, categories, seed)
        self._apply_items([e for evs in by_user.values() for e in evs.values()])
        return written

    def _apply_users(self, by_user: Mapping[str, Mapping[str, Event]],
                     categories: Mapping[str, str | None],
                     seed: Callable[[list[str]], Mapping[str, Mapping]] | None = None
                     ) -> dict[str, tuple[SessionState, int]]:
        """All the users' states and markers in one optimistic transaction (four round trips
        whatever the batch size); a race with another worker retries it on the new states.
        Returns the states written, by user."""
        import redis

        users = list(by_user)
        keys = [self._user_key(u) for u in users]
        rows: dict[str, Mapping] = {}  # seed rows read so far (kept over retries)
        asked: set[str] = set()
        events = [e for u in users for e in by_user[u].values()]
        markers = [self._marker("session", e.event_id) for e in events]
        with self.client.pipeline() as pipe:
            for _ in range(MAX_RACES):
                try:
                    pipe.watch(*keys, *markers)
                    raws = pipe.mget(keys)
                    seen = {e.event_id for e, s in zip(events, pipe.mget(markers))
                            if s is not None}
                    stateless = [u for u, raw in zip(users, raws)
                                 if raw is None and u not in asked]
                    if seed is not None and stateless:  # only users new to this Redis
                        rows.update(seed(stateless))
                        asked.update(stateless)
                    updates = {}
                    for user, key, raw in zip(users, keys, raws):
                        fresh = [e for e in by_user[user].values() if e.event_id not in seen]
                        if not fresh:
                            continue
                        state = (SessionState.from_json(orjson.loads(raw)) if raw
                                 else SessionState.from_feature_row(rows[user])
                                 if user in rows else SessionState())
                        for event in sorted(fresh, key=order_key):
                            state.add(event, categories.get(event.item_id),
                                      self.cfg.history_length, self.cfg.session_gap_s)
                        updates[user] = (key, state, fresh)
                    if not updates:
                        pipe.unwatch()
                        return {}
                    pipe.multi()
                    for key, state, fresh in updates.values():
                        pipe.set(key, orjson.dumps(state.to_json()), ex=self.cfg.state_ttl_s)
                        for event in fresh:
                            pipe.set(self._marker("session", event.event_id), b"1",
                                     ex=self.cfg.dedupe_ttl_s)
                    pipe.execute()
                    return {user: (state, state.version)
                            for user, (_, state, _) in updates.items()}
                except redis.WatchError:
                    continue
        raise RuntimeError(f"{MAX_RACES} transactions in a row raced other workers on the "
                           f"states of {len(users)} users; the batch is retried")

    def _apply_items(self, events: list[Event]) -> None:
        pipe = self.client.pipeline(transaction=False)
        ttl = str(self.cfg.dedupe_ttl_s)
        counters_ttl = str(max(self.cfg.state_ttl_s, 2 * 86_400))
        for event in events:
            fields = [f"{kind}:{bucket_of(event.ts_us)}"
                      for kind in kinds_of(event.event_type, HISTORY_EVENT_TYPES)]
            self._item_script(keys=[self._marker("item", event.event_id),
                                    self._item_key(event.item_id)],
                              args=[ttl, counters_ttl, str(event.ts_us), *fields], client=pipe)
        pipe.execute()

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
        """The versions of the states of ``user_ids`` (those that have one), in one MGET."""
        user_ids = list(user_ids)
        raws = self.client.mget([self._user_key(u) for u in user_ids]) if user_ids else []
        return {u: int(orjson.loads(raw)["version"]) for u, raw in zip(user_ids, raws) if raw}

    def item_versions(self, item_ids: Iterable[str]) -> dict[str, int]:
        """The versions of the counters of ``item_ids`` (those that have them), pipelined."""
        item_ids = list(item_ids)
        pipe = self.client.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.hget(self._item_key(item_id), "version")
        return {i: int(v) for i, v in zip(item_ids, pipe.execute()) if v is not None}

    def item_rows(self, item_ids: Iterable[str]) -> dict[str, tuple[dict, int]]:
        """``item_stream`` rows of ``item_ids`` (those with counters) with their versions;
        buckets too old for any window are deleted on the way."""
        item_ids = list(item_ids)
        pipe = self.client.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.hgetall(self._item_key(item_id))
        out, stale = {}, self.client.pipeline(transaction=False)
        for item_id, raw in zip(item_ids, pipe.execute()):
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
                stale.hdel(self._item_key(item_id), *old)
            out[item_id] = (item_stream_row(item_id, counts, last_us), int(raw[b"version"]))
        stale.execute()
        return out


__all__ = ["StreamState"]
