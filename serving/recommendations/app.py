"""The recommendation service's HTTP API (FastAPI; OpenAPI at ``/openapi.json``, docs at
``/docs``).

* ``POST /v1/recommendations``: top k items for a user and a context;
* ``POST /v1/events``, ``POST /v1/items``: events and catalogue rows into the event stream
  (``ingest_routes``);
* ``GET /v1/explain?user_id=&item_id=``: why an item would be recommended;
* ``GET /healthz`` (the process is up), ``GET /readyz`` (models loaded; breaker states; the
  pid of the worker that answered), ``GET /metrics`` (Prometheus).

Access (:mod:`serving.access`): with API keys configured, the recommendation and explain
routes need the ``recommend`` scope, the ingest routes ``ingest``, the console's pages
``console``, and every other route but the probes, the metrics and the API docs ``admin``
(401 without a valid key, 403 without the scope, 429 over the key's rate, 413 for a body
over the size limit, 400 ``too_deep`` for JSON nested past the limit).

Errors have one shape, ``{"error": CODE, "detail": ...}``: 400 ``malformed_json`` for a body
that is not JSON, 422 ``invalid_request`` listing each bad field (``{"field", "message"}``),
404 ``unknown_item``, 503 ``unavailable`` when a dependency an endpoint cannot do without
(the feature store or the model for ``/v1/explain``) fails. ``/v1/recommendations`` never
answers 503: it degrades to a lower tier instead and says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Annotated

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from serving.access.guard import AccessGuard
from serving.access.keys import ADMIN, INGEST, RECOMMEND
from serving.access.policy import AccessPolicy
from serving.console.routes import console_scope
from serving.recommendations.explain import UnknownItem, explain
from serving.recommendations.ingest_routes import add_ingest_routes
from serving.recommendations.pipeline import RecommendationRequest, Recommender

log = logging.getLogger(__name__)
MAX_ID_LENGTH = 256
# how long past its deadline the endpoint waits for a pipeline that is finishing before it
# answers from the popular lists instead
DEADLINE_GRACE_S = 0.002
MAX_EXCLUDED = 1000
# a request's own ``now_s`` (``client_clock``): no earlier than the lake's earliest plausible
# event, no later than the events' clock-skew allowance (``recsys.data.rules``)
EARLIEST_NOW_S = 631_152_000  # 1990-01-01
MAX_NOW_AHEAD_S = 3_600
# routes anyone may call (probes, Prometheus, the API's docs); the scope each other route needs
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect",
                          "/redoc", "/openapi.json"})
ROUTE_SCOPES = {("POST", "/v1/recommendations"): RECOMMEND, ("GET", "/v1/explain"): RECOMMEND,
                ("POST", "/v1/events"): INGEST, ("POST", "/v1/items"): INGEST}


def required_scope(method: str, path: str) -> str | None:
    """The scope a route needs (None: public). The console's are its own
    (:func:`serving.console.routes.console_scope`); any other route not listed needs
    ``admin``: a new route is closed until it is given its scope."""
    if path in PUBLIC_PATHS:
        return None
    if path == "/console" or path.startswith("/console/"):
        return console_scope(method, path)
    return ROUTE_SCOPES.get((method, path), ADMIN)


# experiment and arm names are at most 64 characters (recsys.experiments.definitions)
ArmName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Context(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str | None = Field(None, max_length=64, examples=["mobile"])
    country: str | None = Field(None, max_length=64, examples=["US"])
    language: str | None = Field(None, max_length=64, examples=["en"])


class RecommendationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(..., min_length=1, max_length=MAX_ID_LENGTH, examples=["u42"])
    k: int | None = Field(None, description="items to return (default and maximum: the "
                                            "service's default_k and max_k)")
    context: Context = Field(default_factory=Context)
    exclude: list[str] = Field(default_factory=list, max_length=MAX_EXCLUDED,
                               description="item ids never to return")
    preferred_categories: list[str] = Field(default_factory=list, max_length=50,
                                            description="declared tastes (cold start)")
    arms: dict[ArmName, ArmName] = Field(
        default_factory=dict, max_length=64,
        description="experiment -> arm to serve this request in, whatever the hash says "
                    "(only with the service's experiments_overrides; not logged as an "
                    "exposure)")
    seed: int | None = Field(
        None, ge=0, lt=2 ** 53,
        description="the exploration draw's seed, to replay an answer (only with the "
                    "service's experiments_overrides; not logged as an exposure)")
    now_s: float | None = Field(
        None, ge=EARLIEST_NOW_S,
        description="the request's time in Unix seconds, for simulators and replays: features "
                    "are read, exposures logged and the serving profile sampled as of it "
                    "(only with the service's client_clock; at most an hour ahead of the "
                    "service's clock)")
    debug: bool = Field(False, description="add the exploration policy's draw: the seed, "
                                           "and per slot its rank in the ranked list and "
                                           "its propensities")


class Item(BaseModel):
    item_id: str
    score: float
    source: str
    category: str
    reasons: list[str]
    team: str | None = Field(None, description="an interleaved answer (an interleaving "
                                               "experiment): the arm whose list placed it")


class RecommendationResponse(BaseModel):
    request_id: str
    user_id: str
    items: list[Item]
    tier: str = Field(..., description="full, retrieval, segment-popular or global-popular")
    segment: str
    cold_start: bool
    model_versions: dict[str, int]
    latency_ms: dict[str, float]
    degraded: list[str]
    experiments: dict[str, str] = Field(
        default_factory=dict, description="experiment -> arm this request was served in",
        examples=[{"ranker-v2": "treatment"}])
    exploration: dict | None = Field(
        None, description="debug answers of an exploring policy: policy, seed, list_size, "
                          "bandit_updates and per slot position, rank, explored, propensity "
                          "(P(this item in this slot)) and cascade_propensity (P(slots 0..j "
                          "as shown))")


def response_document(result, request_id: str | None = None, debug: bool = False) -> dict:
    """The ``RecommendationResponse`` of ``result`` as plain JSON types, built directly: the
    service writes it with orjson, without validating its own output item by item (a test
    holds it to the response model). ``debug`` adds the exploration policy's draw."""
    document = {"request_id": request_id or uuid.uuid4().hex, "user_id": result.user_id,
                "items": [_item(c) for c in result.items],
                "tier": result.tier, "segment": result.segment,
                "cold_start": result.cold_start, "model_versions": result.model_versions,
                "latency_ms": result.latency_ms, "degraded": result.degraded,
                "experiments": result.experiments}
    if debug and result.exploration is not None:
        document["exploration"] = result.exploration.document()
    return document


def _item(c) -> dict:
    item = {"item_id": c.item_id, "score": round(c.score, 6), "source": c.source,
            "category": c.category, "reasons": c.reasons}
    if c.team is not None:
        item["team"] = c.team
    return item


def _error(status: int, code: str, detail) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def _field_errors(exc: RequestValidationError) -> list[dict]:
    return [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()]


class ArrivalTime:
    """ASGI middleware: stamps each HTTP request's arrival (``request.state.arrived``), so the
    deadline also covers the time a request waits for a worker thread."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope.setdefault("state", {})["arrived"] = time.perf_counter()
        await self.app(scope, receive, send)


def _dropped(pipeline: asyncio.Future) -> None:
    """Done callback of a pipeline answered at its deadline: retrieve its outcome (dropped),
    so that a failure is logged rather than reported as never retrieved."""
    if not pipeline.cancelled() and pipeline.exception() is not None:
        log.warning("a pipeline answered late failed: %r", pipeline.exception())


def create_app(recommender: Recommender, producer=None, exposures=None,
               profile=None, access: AccessPolicy | None = None) -> FastAPI:
    """The service's routes on ``recommender``; ``producer`` (a
    :class:`~recsys.stream.producer.StreamProducer`) backs ``/v1/events`` and ``/v1/items``;
    ``exposures`` (an :class:`~serving.recommendations.exposure_log.ExposureLog`) gets every
    answer of ``/v1/recommendations`` (None: answers are not logged); ``profile`` (a
    :class:`~serving.recommendations.serving_profile.ServingProfile`) counts and samples them
    into the serving windows (forced arms and seeded requests are neither logged nor
    profiled); ``access`` is who may call what (None: open, with the default body limits;
    `recsys api` builds it from the config and refuses to start open where it may not)."""
    cfg, metrics = recommender.cfg, recommender.metrics
    deadline_s = cfg.request_deadline_ms / 1000.0
    app = FastAPI(title="recsys recommendation service", version="1",
                  description="Retrieval (two-tower, ScaNN) -> transformer ranking -> rules, "
                              "with fallbacks down to precomputed popular lists.")
    known_paths = PUBLIC_PATHS | {path for _, path in ROUTE_SCOPES}

    def refused(path: str, status: int) -> None:
        metrics.errors.labels(path if path in known_paths else "other", str(status)).inc()

    access = access or AccessPolicy.open()  # one policy: the guard's and the console's
    app.add_middleware(AccessGuard, policy=access, required_scope=required_scope,
                       on_refused=refused)
    app.add_middleware(ArrivalTime)  # outermost: the deadline counts the guard's time too

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        endpoint = request.url.path
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            metrics.errors.labels(endpoint, "400").inc()
            return _error(400, "malformed_json", "the request body is not valid JSON")
        metrics.errors.labels(endpoint, "422").inc()
        return _error(422, "invalid_request", _field_errors(exc))

    @app.post("/v1/recommendations", response_model=RecommendationResponse,
              responses={400: {"description": "malformed JSON"},
                         422: {"description": "invalid fields"}})
    async def recommendations(body: RecommendationBody, request: Request):
        arrived = getattr(request.state, "arrived", None) or time.perf_counter()
        k = cfg.default_k if body.k is None else body.k
        if not 1 <= k <= cfg.max_k:
            metrics.errors.labels("/v1/recommendations", "422").inc()
            return _error(422, "invalid_request", [{
                "field": "body.k", "message": f"k must be between 1 and {cfg.max_k}, got {k}"}])
        if body.arms:
            refused = _refused_arms(body.arms)
            if refused is not None:
                return refused
        if body.seed is not None and not cfg.experiments_overrides:
            metrics.errors.labels("/v1/recommendations", "403").inc()
            return _error(403, "overrides_off", "this service does not take a request's seed "
                                                "(experiments_overrides is false)")
        if body.now_s is not None:
            refused = _refused_clock(body.now_s)
            if refused is not None:
                return refused
        wanted = RecommendationRequest(
            user_id=body.user_id, k=k, context=body.context.model_dump(),
            exclude=list(body.exclude), preferred_categories=list(body.preferred_categories),
            now_s=None if body.now_s is None else int(body.now_s),
            forced_arms=dict(body.arms), seed=body.seed)
        if not recommender.try_admit():  # shed here, before the request queues for a thread
            wanted.queued_s = time.perf_counter() - arrived
            return answer(recommender.shed(wanted), wanted, body.debug)

        def admitted():
            wanted.queued_s = time.perf_counter() - arrived  # off the request's deadline
            return recommender.recommend_admitted(wanted)  # gives its place back

        # The pipeline holds each stage to what is left of the deadline, but a thread starved
        # of CPU or of the GIL under load comes back late: at the deadline, answer from the
        # popular lists here and let the pipeline finish (or never start) unanswered. The
        # shielded task always runs ``admitted``, which gives the place back.
        pipeline = asyncio.ensure_future(run_in_threadpool(admitted))
        left_s = deadline_s + DEADLINE_GRACE_S - (time.perf_counter() - arrived)
        try:
            result = await asyncio.wait_for(asyncio.shield(pipeline), max(left_s, 0.0))
        except TimeoutError:
            result = recommender.late(wanted, time.perf_counter() - arrived)
            if result is None:  # the pipeline claimed it as the wait ended: its answer is due
                result = await pipeline
            else:
                pipeline.add_done_callback(_dropped)
        return answer(result, wanted, body.debug)

    def _refused_arms(arms: dict[str, str]) -> JSONResponse | None:
        if not cfg.experiments_overrides:
            metrics.errors.labels("/v1/recommendations", "403").inc()
            return _error(403, "overrides_off", "this service does not take forced arms "
                                                "(experiments_overrides is false)")
        try:
            recommender.experiments.assigner.check_forced(arms)
        except ValueError as exc:
            metrics.errors.labels("/v1/recommendations", "422").inc()
            return _error(422, "invalid_request", [{"field": "body.arms", "message": str(exc)}])
        return None

    def _refused_clock(now_s: float) -> JSONResponse | None:
        if not cfg.client_clock:
            metrics.errors.labels("/v1/recommendations", "403").inc()
            return _error(403, "client_clock_off", "this service does not take a request's "
                                                   "now_s (client_clock is false)")
        latest = time.time() + MAX_NOW_AHEAD_S
        if now_s > latest:
            metrics.errors.labels("/v1/recommendations", "422").inc()
            return _error(422, "invalid_request", [{
                "field": "body.now_s", "message": f"now_s {now_s:.0f} lies more than "
                f"{MAX_NOW_AHEAD_S} s ahead of the service's clock ({latest:.0f} at most)"}])
        return None

    def answer(result, wanted: RecommendationRequest, debug: bool = False) -> Response:
        request_id = uuid.uuid4().hex
        if not wanted.forced_arms and wanted.seed is None:  # real traffic only
            if exposures is not None:
                exposures.log(request_id, result, wanted.context, wanted.now_s)
            if profile is not None:
                profile.observe(result, wanted.now_s)
        # orjson straight to bytes (FastAPI deprecates ORJSONResponse, and warned per answer)
        return Response(orjson.dumps(response_document(result, request_id, debug)),
                        media_type="application/json")

    @app.get("/v1/explain", responses={404: {"description": "unknown item"},
                                       503: {"description": "a dependency is down"}})
    def explain_item(user_id: str = Query(..., min_length=1, max_length=MAX_ID_LENGTH),
                     item_id: str = Query(..., min_length=1, max_length=MAX_ID_LENGTH)):
        started = time.perf_counter()
        try:
            found = explain(recommender, user_id, item_id, int(time.time()))
        except UnknownItem as exc:
            metrics.errors.labels("/v1/explain", "404").inc()
            return _error(404, "unknown_item", str(exc))
        except Exception as exc:  # noqa: BLE001 - a dependency failed: say which
            metrics.errors.labels("/v1/explain", "503").inc()
            return _error(503, "unavailable", f"{type(exc).__name__}: {exc}")
        metrics.requests.labels("explain", "full").inc()
        metrics.request_latency.labels("explain").observe(time.perf_counter() - started)
        return {"user_id": found.user_id, "item_id": found.item_id, "message": found.message,
                "because": found.because, "retrieval_score": found.retrieval_score,
                "ranker_features": found.ranker_features}

    add_ingest_routes(app, producer, metrics)
    if cfg.console.enabled:
        _add_console(app, recommender, producer, access)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        breakers = {name: b.snapshot()["state"] for name, b in recommender.breakers.items()}
        return {"status": "ready", "items": len(recommender.index),
                "item_index_version": recommender.index.version, "breakers": breakers,
                "pid": os.getpid()}  # which worker answered (`recsys api --workers N`)

    @app.get("/metrics")
    def prometheus():
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def _add_console(app: FastAPI, recommender: Recommender, producer, access: AccessPolicy
                 ) -> None:
    """The operator console at /console, and its sampling of the service's metrics (a
    thread, stopped with the app)."""
    from pathlib import Path

    from recsys.model_contract.registry import Registry
    from serving.console.context import ConsoleContext
    from serving.console.history import MetricsHistory
    from serving.console.overview import stream_reader
    from serving.console.routes import add_console_routes

    cfg = recommender.cfg.console
    history = MetricsHistory(recommender.metrics.render, cfg.history_interval_s,
                             cfg.history_points, extra=stream_reader(producer)).start()
    app.router.add_event_handler("shutdown", history.stop)
    add_console_routes(app, ConsoleContext(
        recommender, history, producer, Registry(recommender.cfg.model_base_path), access,
        Path(cfg.monitoring_dir) if cfg.monitoring_dir else None,
        Path(cfg.experiments_dir) if cfg.experiments_dir else None))


__all__ = ["create_app", "RecommendationBody", "RecommendationResponse"]
