"""The stream worker: reads the event stream in a consumer group and applies each entry's
effects, idempotently by event id, before acknowledging it.

Effects of a batch, in order: decisions (what exploring policies drew from) and exposures
(what the service showed) appended to the lake or PostgreSQL, idempotent by request and
exposure id; the contextual bandit's statistics in Redis (``bandit_updates``, once per
decision and event); catalogue rows written to the online store and, embedded by
the newest item tower, added to the fresh-item index (``fresh_items``); the users' session
states and the items' counters in Redis (:class:`~stream_worker.state_store.StreamState`);
the ``user_session`` and ``item_stream`` rows pushed to the Feast online store; events and
items appended to the lake (embedded profile). Only then are the entries acked.

Guarantees:
* A worker killed anywhere leaves its entries pending; whoever processes them again (itself
  restarted, or another worker after ``claim_idle_ms``) applies nothing twice: the state
  changes are idempotent by event id, the pushes write the current state, the lake drops ids
  it holds.
* A malformed entry (bad envelope, bad JSON, a record that fails validation) goes to the
  dead-letter stream with its reason at once; the rest of its batch is applied.
* When a batch fails, its entries are retried one by one, so one entry that keeps failing
  cannot hold the others back. An entry that fails ``max_deliveries`` times on its own is
  dead-lettered with the last error. A failure that says a dependency is unreachable (a
  connection or timeout error of Redis, PostgreSQL or the network, a busy or locked SQLite
  file), or
  every entry of a batch failing, is an outage: nothing is counted against the entries; the
  worker backs off and retries.
* Catalogue updates end with the newest row (by stream entry id) everywhere, whatever order
  workers apply them in (:class:`~stream_worker.catalogue_state.CatalogueState`).
* An entry deleted from the stream while pending is dead-lettered, not left pending.
* A user the stream holds no state for continues from the online store's ``user_session``
  row (what the batch job materialized, or an earlier push): their first event adds to that
  history instead of replacing it (``StreamState.apply``'s seed).
* A pushed state is re-checked after the push: if another worker changed it meanwhile, the
  newest state is pushed again, so the online store ends with the newest state.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pyarrow as pa

from recsys.data.arrow_rows import rows_of
from recsys.data.records import BadRecord, parse_event, parse_item
from recsys.data.schemas import DECISIONS, EVENTS, EXPOSURES, ITEMS
from recsys.features.rows import catalogue_row
from recsys.stream.envelope import BadEntry, Envelope, decode
from recsys.stream.records import ACCEPTED, REJECTED, check_records, input_schema
from stream_worker.catalogue_state import CatalogueState
from stream_worker.consumer_group import DELETED_REASON, ConsumerGroup, Delivery
from stream_worker.session_state import SessionState
from stream_worker.sinks import LakeSink, OnlineFeatureSink
from stream_worker.state_store import StreamState

log = logging.getLogger(__name__)
MAX_PUSH_ROUNDS = 5
MAX_BACKOFF_S = 10.0
SQLITE_BUSY, SQLITE_LOCKED = 5, 6


def entry_time_us(entry_id: str) -> int:
    """A stream entry id as microseconds: its milliseconds, then its sequence number (up to
    999), so later entries get later times."""
    ms, _, seq = entry_id.partition("-")
    return int(ms) * 1000 + min(int(seq or 0), 999)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says a dependency is unreachable or busy, not that the entry is bad."""
    import sqlite3

    import redis

    if isinstance(exc, sqlite3.OperationalError):  # busy or locked only: others are bugs
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (SQLITE_BUSY, SQLITE_LOCKED) \
            or "database is locked" in str(exc)
    kinds: tuple[type[BaseException], ...] = (
        redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError)
    try:
        import psycopg

        kinds += (psycopg.OperationalError, psycopg.InterfaceError)
    except ImportError:  # the production extra is not installed
        pass
    return isinstance(exc, kinds)


@dataclass
class BatchReport:
    """What one batch did. ``applied`` counts entries whose effects are done (acked)."""

    received: int = 0
    applied: int = 0
    dead_lettered: int = 0
    failed: int = 0
    freshness_s: list[float] = field(default_factory=list)


@dataclass
class _Parsed:
    delivery: Delivery
    envelope: Envelope
    row: dict
    source: tuple[pa.Table, int] | None = None  # the checked table the row came from (not items)


def checked_table(parsed: list[_Parsed], kind: str) -> pa.Table | None:
    """The rows of ``kind`` (an event, exposure or decision: those come from a checked
    batch) carrying effects, as the Arrow table the batch's check made (no conversion back
    from Python rows), in order; None when there are none."""
    picked: dict[int, tuple[pa.Table, list[int]]] = {}
    for p in parsed:
        if p.envelope.kind == kind and p.row:
            table, row = p.source
            picked.setdefault(id(table), (table, []))[1].append(row)
    tables = [table if len(rows) == len(table) else table.take(rows)
              for table, rows in picked.values()]
    return None if not tables else tables[0] if len(tables) == 1 else pa.concat_tables(tables)


class StreamWorker:
    def __init__(self, group: ConsumerGroup, state: StreamState, online: OnlineFeatureSink,
                 lake: LakeSink | None = None, fresh=None,
                 before_ack: Callable[[list[str]], None] | None = None, bandit=None):
        self.group, self.state, self.online, self.lake = group, state, online, lake
        self.fresh = fresh  # a FreshItemIndexer, or None: no fresh-item index
        self.bandit = bandit  # a BanditLearner, or None: the bandit does not learn here
        self.cfg = group.cfg
        self.catalogue = CatalogueState(group.client, state.prefix)
        self.before_ack = before_ack  # test hook: runs after the effects, before the ack
        self._failures_in_a_row = 0
        self._last_claim = 0.0
        self._stop = threading.Event()

    # -- the loop ---------------------------------------------------------------------------

    def step(self) -> BatchReport:
        """Claim stale entries (every ``claim_idle_ms`` / 2) or read the next batch, and
        process it."""
        now = time.monotonic()
        deliveries: list[Delivery] = []
        if now - self._last_claim >= self.cfg.claim_idle_ms / 2000:
            self._last_claim = now
            self.group.trim()
            deliveries = self.group.claim_stale()
            if self.fresh is not None:
                self.fresh.sync()
        if not deliveries:
            deliveries = self.group.read()
        return self.process(deliveries)

    def run(self, stop: threading.Event, on_batch: Callable[[BatchReport], None] | None = None
            ) -> None:
        """Process batches until ``stop`` is set; a lost Redis connection is retried with
        backoff."""
        import redis

        self._stop = stop
        ensured = False
        while not stop.is_set():
            try:
                if not ensured:
                    self.group.ensure()
                    ensured = True
                report = self.step()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self._back_off(stop, f"the stream's Redis is unreachable ({exc})")
                continue
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                ensured = False  # Redis lost the stream or the group (restart without data)
                self._back_off(stop, f"the consumer group is gone ({exc}); creating it again")
                continue
            if on_batch is not None and report.received:
                on_batch(report)

    def _back_off(self, stop: threading.Event, why: str) -> None:
        self._failures_in_a_row += 1
        delay = min(MAX_BACKOFF_S, 0.1 * 2 ** min(self._failures_in_a_row, 10))
        log.warning("%s; retrying in %.1f s", why, delay)
        stop.wait(delay)

    # -- one batch --------------------------------------------------------------------------

    def process(self, deliveries: list[Delivery]) -> BatchReport:
        report = BatchReport(received=len(deliveries))
        parsed = self._parse(deliveries, report)
        if not parsed:
            return report
        try:
            self._apply(parsed)
        except Exception as exc:  # noqa: BLE001 - isolate the entry that fails
            if is_outage(exc):
                report.failed += len(parsed)
                self._wait_out_outage(f"{type(exc).__name__}: {exc}")
                return report
            log.warning("a batch of %d entries failed (%s: %s); retrying them one by one",
                        len(parsed), type(exc).__name__, exc)
            self._apply_one_by_one(parsed, report)
            return report
        self._done(parsed, report)
        return report

    def _parse(self, deliveries: list[Delivery], report: BatchReport) -> list[_Parsed]:
        envelopes: list[tuple[Delivery, Envelope]] = []
        failed_before = self.group.failures(deliveries)
        for delivery in deliveries:
            if not delivery.fields:
                self._dead_letter(delivery, DELETED_REASON, report)
                continue
            failures = failed_before[delivery.entry_id]
            if failures >= self.cfg.max_deliveries:
                self._dead_letter(delivery, f"failed {failures} times; last error: "
                                            f"{self.group.last_failure(delivery.entry_id)}",
                                  report)
                continue
            try:
                envelopes.append((delivery, decode(delivery.entry_id, delivery.fields)))
            except BadEntry as exc:
                self._dead_letter(delivery, str(exc), report)
        parsed = []
        for kind, spec in (("event", EVENTS), ("exposure", EXPOSURES),
                           ("decision", DECISIONS)):
            batch = [(d, e) for d, e in envelopes if e.kind == kind]
            if not batch:
                continue
            checked = check_records([e.body for _, e in batch], spec)
            rows = rows_of(checked.table, times="micros")  # what parse_event reads
            for (delivery, envelope), outcome in zip(batch, checked.outcomes):
                if outcome.status == REJECTED:
                    self._dead_letter(delivery, f"invalid {kind}: {outcome.reason}", report)
                elif outcome.status == ACCEPTED:
                    parsed.append(_Parsed(delivery, envelope, rows[outcome.row],
                                          (checked.table, outcome.row)))
                else:  # a repeat within the batch: its first copy carries the effects
                    parsed.append(_Parsed(delivery, envelope, {}))
        for delivery, envelope in envelopes:  # items one by one: each is a version
            if envelope.kind == "item":
                outcome = check_records([envelope.body], ITEMS).outcomes[0]
                if outcome.status == REJECTED:
                    self._dead_letter(delivery, f"invalid item: {outcome.reason}", report)
                else:
                    parsed.append(_Parsed(delivery, envelope, envelope.body))
        return parsed

    def _dead_letter(self, delivery: Delivery, reason: str, report: BatchReport) -> None:
        if self.group.dead_letter(delivery, reason):
            report.dead_lettered += 1
            log.warning("dead-lettered %s: %s", delivery.entry_id, reason)

    def _apply(self, parsed: list[_Parsed]) -> None:
        event_rows = [p.row for p in parsed if p.envelope.kind == "event" and p.row]
        items = [p for p in parsed if p.envelope.kind == "item"]
        exposures = [p.row for p in parsed if p.envelope.kind == "exposure" and p.row]
        decisions = [p.row for p in parsed if p.envelope.kind == "decision" and p.row]
        if decisions and self.lake is not None:
            self.lake.write_decisions(checked_table(parsed, "decision"))
        if exposures and self.lake is not None:
            self.lake.write_exposures(checked_table(parsed, "exposure"))
        if self.bandit is not None and (decisions or event_rows):
            self.bandit.apply(decisions, event_rows)
        if items:
            self._apply_items(items)
        if event_rows:
            self._apply_events(event_rows, parsed)

    def _apply_items(self, items: list[_Parsed]) -> None:
        """Offer each update to the catalogue state, then write the newest rows downstream
        until they are still the newest after the write."""
        self.catalogue.offer((p.row["item_id"], p.delivery.entry_id, p.row) for p in items)
        pending = {p.row["item_id"] for p in items}
        for _ in range(MAX_PUSH_ROUNDS):
            current = self.catalogue.current(pending)
            self._write_items(list(current.values()))
            after = self.catalogue.current(pending)
            pending = {i for i, (_, version) in current.items()
                       if after.get(i, ({}, version))[1] != version}
            if not pending:
                return

    def _write_items(self, versions: list[tuple[dict, str]]) -> None:
        """Write (row, entry id) catalogue rows downstream. Online rows carry their entry's
        time as their event time, so an online store that keeps the newest row by event time
        (Feast's Redis store) orders them as the stream did, whatever the workers' clocks."""
        checked = check_records([row for row, _ in versions], ITEMS)
        if checked.rejected:
            raise ValueError(f"a stored catalogue row is invalid: {checked.rejected[0].reason}")
        rows = checked.table.to_pylist()
        try:
            items = [parse_item(row) for row in rows]
        except BadRecord as exc:
            raise ValueError(f"item row did not parse: {exc}") from exc
        stamps = [entry_time_us(entry_id) for _, entry_id in versions]
        rows_online = [{**catalogue_row(item), "event_timestamp": stamp,
                        "created_timestamp": stamp} for item, stamp in zip(items, stamps)]
        self.online.write_catalogue(rows_online)
        if self.fresh is not None:
            self.fresh.add(rows_online)
        if self.lake is not None:
            self.lake.write_items(pa.Table.from_pylist(rows, schema=input_schema(ITEMS)))

    def _apply_events(self, rows: list[dict], parsed: list[_Parsed]) -> None:
        events = [parse_event(row) for row in rows]
        categories = self.online.categories(e.item_id for e in events)
        written, counters = self.state.apply(events, categories, self.online.session_rows)
        self._push_until_stable({e.user_id for e in events}, written, counters)
        if self.lake is not None:
            self.lake.write_events(checked_table(parsed, "event"))

    def _push_until_stable(self, users: set[str],
                           written: dict[str, tuple[SessionState, int]],
                           counters: dict[str, tuple[dict, int]]) -> None:
        """Push the users' sessions and the items' counters, then check their versions: what
        changed meanwhile (another worker) is pushed again. The first push uses what the
        batch's own updates returned: the states it wrote and every item's counters; the
        other users' states (their events were applied before, e.g. by a worker that died
        before its push) are read."""
        sessions = {u: written[u] for u in users if u in written}
        sessions.update(self.state.sessions(users - sessions.keys()))
        for _ in range(MAX_PUSH_ROUNDS):
            self.online.push_sessions([s.feature_row(u) for u, (s, _) in sessions.items()])
            self.online.push_item_counters([row for row, _ in counters.values()])
            session_versions = self.state.session_versions(sessions)
            item_versions = self.state.item_versions(counters)
            users = {u for u, (_, v) in sessions.items() if session_versions.get(u, v) != v}
            items = {i for i, (_, v) in counters.items() if item_versions.get(i, v) != v}
            if not users and not items:
                return
            sessions = self.state.sessions(users)
            counters = self.state.item_rows(items)

    def _done(self, parsed: list[_Parsed], report: BatchReport) -> None:
        ids = [p.delivery.entry_id for p in parsed]
        if self.before_ack is not None:
            self.before_ack(ids)
        self.group.ack(ids)
        self._failures_in_a_row = 0
        report.applied += len(ids)
        now_us = time.time_ns() // 1000
        report.freshness_s.extend((now_us - p.envelope.accepted_at_us) / 1e6 for p in parsed
                                  if p.envelope.accepted_at_us)

    def _apply_one_by_one(self, parsed: list[_Parsed], report: BatchReport) -> None:
        failed: list[tuple[_Parsed, str, bool]] = []
        for one in parsed:
            try:
                self._apply([one])
            except Exception as exc:  # noqa: BLE001 - recorded as the entry's failure
                failed.append((one, f"{type(exc).__name__}: {exc}", is_outage(exc)))
                continue
            self._done([one], report)
        if not failed:
            return
        report.failed += len(failed)
        systemic = len(failed) == len(parsed) and len(parsed) > 1
        for one, reason, outage in failed:
            self.group.note_failure([one.delivery.entry_id], reason,
                                    count=not (systemic or outage))
        self.group.retry_own_pending()
        self._back_off(self._stop, f"{len(failed)} of {len(parsed)} entries failed "
                                          f"({failed[0][1]})" + (
                                              "; a dependency looks down" if systemic else ""))

    def _wait_out_outage(self, why: str) -> None:
        self.group.retry_own_pending()
        self._back_off(self._stop, f"a dependency is unreachable ({why})")


__all__ = ["StreamWorker", "BatchReport"]
