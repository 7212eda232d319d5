"""One consumer of the stream's consumer group: reading, claiming, acknowledging and
dead-lettering entries (Redis Streams: XREADGROUP, XAUTOCLAIM, XACK).

Guarantees:
* An entry leaves the group's pending list only by :meth:`ack` (its effects are done) or by
  :meth:`dead_letter`, which acks it and appends it to the dead-letter stream with its reason
  in one script, only if the ack removed it: an entry two consumers hold (one claimed it from
  the other) is dead-lettered once.
* Entries a stopped consumer left pending for longer than ``claim_idle_ms`` are claimed by
  :meth:`claim_stale`; each delivery comes with how many times the entry has been delivered.
* A consumer restarted under its old name first re-reads its own pending entries.
* An entry that comes back without its fields (deleted from the stream while pending) is
  handed over as a delivery with no fields, so the worker dead-letters it instead of leaving
  it pending for ever.
* :meth:`trim` deletes only entries every group of the stream has read and acked.
"""

from __future__ import annotations

from typing import NamedTuple

from recsys.stream.config import StreamConfig

# KEYS: stream, dead-letter stream, errors hash, failures hash;
# ARGV: group, entry id, field, value, ...
_DEAD_LETTER = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2])
return 1
"""


DELETED_REASON = "the entry was deleted from the stream before it was processed"


class Delivery(NamedTuple):  # a tuple: a batch makes thousands
    entry_id: str
    fields: dict[bytes, bytes]
    deliveries: int


def _id(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"


class ConsumerGroup:
    def __init__(self, client, cfg: StreamConfig, consumer: str):
        self.client, self.cfg, self.consumer = client, cfg, consumer
        self._own_pending_done = False
        self._claim_cursor = "0-0"
        self.errors_key = f"{cfg.stream}:errors"
        self.failures_key = f"{cfg.stream}:failures"
        self._dead_letter = client.register_script(_DEAD_LETTER)

    def ensure(self) -> None:
        """Create the stream and the group if they do not exist (idempotent)."""
        import redis

        try:
            self.client.xgroup_create(self.cfg.stream, self.cfg.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self) -> list[Delivery]:
        """The next batch: this consumer's own pending entries first (after a restart),
        then new entries (waiting up to ``block_ms``)."""
        if not self._own_pending_done:
            batch = self._read_from("0")
            if batch:
                return batch
            self._own_pending_done = True
        return self._read_from(">")

    def _read_from(self, start: str) -> list[Delivery]:
        reply = self.client.xreadgroup(self.cfg.group, self.consumer, {self.cfg.stream: start},
                                       count=self.cfg.batch_size,
                                       block=self.cfg.block_ms if start == ">" else None)
        entries = [(eid, fields or {}) for _, items in (reply or []) for eid, fields in items]
        if start == ">":
            return [Delivery(_id(eid), fields, 1) for eid, fields in entries]
        return self._with_counts(entries)

    def claim_stale(self) -> list[Delivery]:
        """Entries idle for ``claim_idle_ms`` in any consumer, now this one's. Entries deleted
        from the stream meanwhile are dead-lettered: Redis 7 drops them from the pending list
        and names them (they are recorded here); Redis 6.2 claims them without their ids, so
        this consumer's own pending entries are read again next, which hands them over."""
        reply = self.client.xautoclaim(self.cfg.stream, self.cfg.group, self.consumer,
                                       min_idle_time=self.cfg.claim_idle_ms,
                                       start_id=self._claim_cursor, count=self.cfg.batch_size)
        self._claim_cursor = _id(reply[0])
        if len(reply) > 2 and reply[2]:
            self._record_deleted([_id(i) for i in reply[2]])
        if any(eid is None for eid, _ in reply[1]):
            self._own_pending_done = False
        return self._with_counts([(eid, fields or {}) for eid, fields in reply[1]
                                  if eid is not None])

    def _record_deleted(self, entry_ids: list[str]) -> None:
        """Dead-letter entries Redis already dropped from the pending list (deleted from the
        stream while pending); only the claimer that was told sees them."""
        pipe = self.client.pipeline(transaction=True)
        for entry_id in entry_ids:
            pipe.xadd(self.cfg.dead_letter_stream, {
                b"reason": DELETED_REASON.encode(), b"source_entry_id": entry_id.encode(),
                b"deliveries": b"0", b"consumer": self.consumer.encode()})
        pipe.hdel(self.errors_key, *entry_ids)
        pipe.hdel(self.failures_key, *entry_ids)
        pipe.execute()

    def _with_counts(self, entries) -> list[Delivery]:
        if not entries:
            return []
        ids = [_id(eid) for eid, _ in entries]
        pending = self.client.xpending_range(self.cfg.stream, self.cfg.group, min=ids[0],
                                             max=ids[-1], count=len(ids) * 4 + 16,
                                             consumername=self.consumer)
        counts = {_id(p["message_id"]): int(p["times_delivered"]) for p in pending}
        return [Delivery(_id(eid), fields, counts.get(_id(eid), 1)) for eid, fields in entries]

    def ack(self, entry_ids: list[str]) -> None:
        if entry_ids:
            pipe = self.client.pipeline(transaction=True)
            pipe.xack(self.cfg.stream, self.cfg.group, *entry_ids)
            pipe.hdel(self.errors_key, *entry_ids)
            pipe.hdel(self.failures_key, *entry_ids)
            pipe.execute()

    def note_failure(self, entry_ids: list[str], reason: str, count: bool = True) -> None:
        """Remember why the latest delivery of these entries failed (the dead-letter reason
        if they run out of deliveries), and count the failure against them if ``count``."""
        if entry_ids:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(self.errors_key, mapping={i: reason[:2000] for i in entry_ids})
            if count:
                for entry_id in entry_ids:
                    pipe.hincrby(self.failures_key, entry_id, 1)
            pipe.execute()

    def failures(self, deliveries: list[Delivery]) -> dict[str, int]:
        """How many deliveries of each entry failed on their own (not counting outages); one
        round trip, none when every entry is delivered for the first time."""
        again = [d.entry_id for d in deliveries if d.deliveries > 1]
        counts = dict.fromkeys((d.entry_id for d in deliveries), 0)
        if again:
            counts.update({i: int(n or 0) for i, n in
                           zip(again, self.client.hmget(self.failures_key, again))})
        return counts

    def trim(self) -> int:
        """When the stream holds more than ``max_stream_length`` entries, delete those every
        group has read and acked (XTRIM MINID below the oldest pending or unread entry);
        returns how many were deleted."""
        if self.client.xlen(self.cfg.stream) <= self.cfg.max_stream_length:
            return 0
        keep_from = None
        for info in self.client.xinfo_groups(self.cfg.stream):
            name = _id(info["name"])
            first_unread = _next_id(_id(info["last-delivered-id"]))
            oldest = self.client.xpending(self.cfg.stream, name).get("min")
            candidates = [first_unread] + ([_id(oldest)] if oldest else [])
            group_keep = min(candidates, key=_id_key)
            keep_from = group_keep if keep_from is None else min(keep_from, group_keep,
                                                                 key=_id_key)
        if keep_from is None:
            return 0
        return int(self.client.xtrim(self.cfg.stream, minid=keep_from, approximate=False))

    def retry_own_pending(self) -> None:
        """Make the next :meth:`read` start again with this consumer's pending entries."""
        self._own_pending_done = False

    def last_failure(self, entry_id: str) -> str:
        reason = self.client.hget(self.errors_key, entry_id)
        return reason.decode() if reason else "no reason recorded"

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move one entry to the dead-letter stream with ``reason``, atomically with its ack;
        False if another consumer already acked it."""
        fields = {**delivery.fields, b"reason": reason.encode(),
                  b"source_entry_id": delivery.entry_id.encode(),
                  b"deliveries": str(delivery.deliveries).encode(),
                  b"consumer": self.consumer.encode()}
        flat = [part for pair in fields.items() for part in pair]
        return bool(self._dead_letter(
            keys=[self.cfg.stream, self.cfg.dead_letter_stream, self.errors_key,
                  self.failures_key],
            args=[self.cfg.group, delivery.entry_id, *flat]))


__all__ = ["ConsumerGroup", "Delivery"]
