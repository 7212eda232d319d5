"""``POST /v1/events`` and ``POST /v1/items``: events and catalogue rows into the event stream.

The body is one record (a JSON object with the lake's fields) or a batch
(``{"events": [...]}``, ``{"items": [...]}``, at most ``MAX_BATCH``). Each record is checked
on its own; the answer lists, in input order, whether it was ``accepted`` (appended to the
stream, with its entry id), ``rejected`` (with the reasons) or a ``duplicate`` of an earlier
record in the same batch. An event without a ``timestamp`` gets the time it was received.

Status codes: 200 when the request was read (even if every record was rejected: the
per-record results say why); 400 ``malformed_json``; 422 ``invalid_request`` when the body is
not a record or a batch; 503 ``unavailable`` when Redis cannot be written (nothing of the
request was appended; retrying is safe, the workers deduplicate by event id). Any other
failure is a fault of the service, not of the stream or the input: a 500, logged with its
traceback, never reported as the stream being down.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from recsys.data.schemas import EVENTS, ITEMS, TableSpec
from recsys.stream.producer import StreamProducer

MAX_BATCH = 1000
BATCH_KEYS = {"event": "events", "item": "items"}


class RecordResult(BaseModel):
    index: int
    key: str | None
    status: str
    reason: str | None = None
    entry_id: str | None = None


class IngestResponse(BaseModel):
    accepted: int
    rejected: int
    duplicates: int
    results: list[RecordResult]


def _error(status: int, code: str, detail) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def _records(body: Any, kind: str) -> list | str:
    """The records of a request body, or why the body is neither a record nor a batch."""
    key = BATCH_KEYS[kind]
    if not isinstance(body, dict):
        return (f"the body must be a JSON object: one {kind}, or {{\"{key}\": [...]}}; got "
                f"{type(body).__name__}")
    if key not in body:
        return [body]
    if set(body) != {key}:
        return f"a batch body holds only \"{key}\", got also {sorted(set(body) - {key})}"
    records = body[key]
    if not isinstance(records, list) or not records:
        return f"\"{key}\" must be a non-empty list of {kind} objects"
    if len(records) > MAX_BATCH:
        return f"at most {MAX_BATCH} {key} per request, got {len(records)}"
    return records


def _json_type(arrow_type) -> dict:
    import pyarrow as pa

    if pa.types.is_list(arrow_type):
        return {"type": "array", "items": _json_type(arrow_type.value_type)}
    if pa.types.is_timestamp(arrow_type):
        return {"type": "string", "format": "date-time"}
    if pa.types.is_integer(arrow_type):
        return {"type": "integer"}
    if pa.types.is_floating(arrow_type):
        return {"type": "number"}
    return {"type": "string"}


def record_schema(spec: TableSpec, defaulted: tuple[str, ...] = ()) -> dict:
    """The JSON schema of one record of the lake table ``spec`` (OpenAPI documentation: each
    record is still checked by the lake's own validation, which says why it is rejected)."""
    properties = {}
    for field in spec.schema:
        if field.name not in spec.input_columns:
            continue
        kind = _json_type(field.type)
        properties[field.name] = kind if not field.nullable else {
            "anyOf": [kind, {"type": "null"}]}
    return {"type": "object", "properties": properties,
            "required": [c for c in spec.required if c not in defaulted]}


def _body_schema(spec: TableSpec, key: str, defaulted: tuple[str, ...] = ()) -> dict:
    record = record_schema(spec, defaulted)
    return {"oneOf": [record, {"type": "object", "additionalProperties": False,
                               "required": [key], "properties": {key: {
                                   "type": "array", "items": record, "minItems": 1,
                                   "maxItems": MAX_BATCH}}}]}


def add_ingest_routes(app: FastAPI, producer: StreamProducer | None, metrics) -> None:
    """Add the two routes; with no producer they answer 503 (no stream configured)."""

    def ingest(kind: str, path: str):
        async def handler(request: Request):
            raw = await request.body()
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:  # the standard library also reads NaN, as before
                try:
                    body = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    metrics.errors.labels(path, "400").inc()
                    return _error(400, "malformed_json", "the request body is not valid JSON")
            records = _records(body, kind)
            if isinstance(records, str):
                metrics.errors.labels(path, "422").inc()
                return _error(422, "invalid_request", [{"field": "body", "message": records}])
            if producer is None:
                metrics.errors.labels(path, "503").inc()
                return _error(503, "unavailable", "this service has no event stream configured")
            if kind == "event":
                received = dt.datetime.now(dt.timezone.utc).isoformat()
                records = [{**r, "timestamp": received}
                           if isinstance(r, dict) and r.get("timestamp") is None else r
                           for r in records]
            started = time.perf_counter()
            try:
                # validation and the Redis round trip block: off the event loop
                receipts = await run_in_threadpool(producer.submit, kind, records)
            except RedisError as exc:  # the stream is down or refuses the append: say so
                metrics.errors.labels(path, "503").inc()
                return _error(503, "unavailable", f"the event stream cannot be written: "
                                                  f"{type(exc).__name__}: {exc}")
            except Exception:  # a fault of ours (validation cannot fail on input): a 500
                metrics.errors.labels(path, "500").inc()
                raise
            metrics.request_latency.labels(path).observe(time.perf_counter() - started)
            counts = {s: sum(r.status == s for r in receipts)
                      for s in ("accepted", "rejected", "duplicate")}
            for status, n in counts.items():
                if n:
                    metrics.ingested.labels(kind, status).inc(n)
            # written straight to bytes in IngestResponse's shape (the model documents it;
            # validating 1,000 results of our own making cost more than the append)
            return Response(orjson.dumps({
                "accepted": counts["accepted"], "rejected": counts["rejected"],
                "duplicates": counts["duplicate"],
                "results": [{"index": r.index, "key": r.key, "status": r.status,
                             "reason": r.reason or None, "entry_id": r.entry_id}
                            for r in receipts]}), media_type="application/json")
        return handler

    description = ("One {kind} (a JSON object with the lake's fields) or a batch "
                   "{{\"{key}\": [...]}} of at most %d; per-record results in input order." %
                   MAX_BATCH)
    schemas = {"event": _body_schema(EVENTS, "events", ("timestamp",)),
               "item": _body_schema(ITEMS, "items")}
    for kind, path in (("event", "/v1/events"), ("item", "/v1/items")):
        app.add_api_route(
            path, ingest(kind, path), methods=["POST"], response_model=IngestResponse,
            summary=f"Append {BATCH_KEYS[kind]} to the event stream",
            description=description.format(kind=kind, key=BATCH_KEYS[kind]),
            responses={400: {"description": "malformed JSON"},
                       422: {"description": "not a record or a batch"},
                       503: {"description": "the stream cannot be written"}},
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": schemas[kind]}}}})


__all__ = ["add_ingest_routes", "MAX_BATCH"]
