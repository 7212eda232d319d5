"""One recommendation request: features -> retrieval -> ranking -> rules -> top k, within a
deadline, degrading tier by tier when a dependency is slow, failing or switched off.

Tiers, best first:

* ``full``: two-tower candidates (plus trending and cold-start ones) ordered by the ranker;
* ``retrieval``: the same candidates in retrieval order (the ranker failed or ran out of time,
  or an arm's ``pipeline: retrieval``): every candidate, whatever its source, by its two-tower
  score (the query embedding's dot product with the item's; last when the item is not
  indexed), never by a popularity count on another scale;
* ``segment-popular``: the precomputed popular list of the request's segments (country,
  language, device), when retrieval or the user's features are unavailable;
* ``global-popular``: the precomputed global list, when no segment applies.

The deadline counts from the request's arrival: time it spent queued before the pipeline
(``queued_s``) is already spent.

At most ``max_in_flight`` requests run the personalised pipeline at once; the others are
answered from the popular lists straight away (reason ``overload``): shedding load keeps the
dependencies' latency inside their budgets, so breakers open for failing dependencies, not for
a busy process.

Guarantees: the answer always holds ``min(k, catalogue)`` items, none of them excluded or
already consumed by the user (when their history could be read) and no item twice; each
dependency call gets ``min(its budget, what is left of the request's)`` and runs only if its
circuit breaker is closed or half-open; the result names its tier, the reasons it is
degraded, the model versions used and each stage's latency.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from recsys.experiments.interleaving import A as TEAM_A
from recsys.experiments.interleaving import team_draft
from recsys.model_contract.fusion import fuse
from recsys.model_contract.ranker_inputs import RETRIEVAL_SCORE
from serving.recommendations.circuit_breaker import CircuitBreaker, CircuitOpen
from serving.recommendations.config import ServiceConfig
from serving.recommendations.cpu_account import CpuAccount, carried, measure
from serving.recommendations.deadline import Deadline, DeadlineExceeded, call_with_timeout
from serving.recommendations.experiments import ExperimentsFile
from serving.recommendations.exploration import (
    ExplorationDecision,
    Explorer,
    OtherCategories,
)
from serving.recommendations.item_features import (
    ItemTableLoader,
    encode_item_rows,
    stored_item_specs,
)
from serving.recommendations.item_index import ItemIndex
from serving.recommendations.metrics import ServiceMetrics
from serving.recommendations.model_clients import ModelUnavailable
from serving.recommendations.popular_lists import PopularLists
from serving.recommendations.queries import (
    History,
    RankerEncoder,
    context_values,
    query_arrays,
    query_row,
    user_history,
)
from serving.recommendations.rules import Candidate, apply_rules, merge_sources
from serving.recommendations.ttl_cache import TTLCache

log = logging.getLogger(__name__)
TIERS = ("full", "retrieval", "segment-popular", "global-popular")
FEATURE_STORE, MODEL_SERVER, RANKER = "feature_store", "model_server", "ranker"
MIN_STAGE_BUDGET_S = 0.001


@dataclass
class RecommendationRequest:
    user_id: str
    k: int
    context: dict[str, str | None] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    preferred_categories: list[str] = field(default_factory=list)
    now_s: int | None = None
    forced_arms: dict[str, str] = field(default_factory=dict)  # experiment -> arm (overrides)
    seed: int | None = None  # the exploration draw's seed (None: a fresh one), for replay
    queued_s: float = 0.0  # spent before the pipeline (HTTP parsing, queues): off the deadline
    # taken by whichever answers it first: the pipeline, or a caller that stopped waiting
    # for it at the deadline (``Recommender.late``); the other's answer is dropped uncounted
    _answer: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                    compare=False)

    def claim(self) -> bool:
        """True once, for the first caller: it answers this request."""
        return self._answer.acquire(blocking=False)

    @property
    def answered(self) -> bool:
        return self._answer.locked()


@dataclass
class RecommendationResult:
    user_id: str
    items: list[Candidate]
    tier: str
    segment: str
    model_versions: dict[str, int]
    latency_ms: dict[str, float]
    degraded: list[str]
    cold_start: bool
    experiments: dict[str, str] = field(default_factory=dict)  # experiment -> arm
    holdout: bool = False  # in the global holdout: every experiment's baseline
    tier_by_arm: bool = False  # an arm chose the tier (pipeline retrieval or popular)
    exploration: ExplorationDecision | None = None  # what an exploring policy drew
    # a sampled answer's (query row, query embedding, top retrieval score), for the serving
    # profile (``profile_sample_rate``); None for the others
    probe: tuple | None = None
    model_label: str = ""  # the label of the pipeline that served it ("": the default)


class Retrieved(NamedTuple):
    """Retrieval's answer to one query as the cache holds it: flat tuples of strings and
    numbers and an array, no object per candidate. The garbage collector stops tracking
    such tuples, so a cache of many answers adds nothing to its full collections (with a
    ``Candidate`` per cached item, they took up to 220 ms on 100K items, at p99.9)."""

    item_ids: tuple[str, ...]
    scores: tuple[float, ...]
    categories: tuple[str, ...]
    created_at_s: tuple[int | None, ...]
    query: np.ndarray
    version: int

    def candidates(self) -> list[Candidate]:
        return [Candidate(i, s, "two-tower", c, t) for i, s, c, t in
                zip(self.item_ids, self.scores, self.categories, self.created_at_s)]


class StageFailed(Exception):
    """A dependency stage did not give a usable answer; ``reason`` says why, for the
    response and the fallback metric."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage, self.reason = stage, reason


@dataclass
class ModelSpecs:
    """The input specs of the models being served (from their manifests), and the weight
    of the two-tower score in the ranker's fused score."""

    query: tuple
    ranker: tuple | None
    retrieval_weight: float = 0.0

    def __post_init__(self) -> None:
        self.item_specs = stored_item_specs(self.ranker or ())
        self.ranker_encoder = (None if self.ranker is None
                               else RankerEncoder(self.ranker, self.item_specs))


class Recommender:
    def __init__(self, cfg: ServiceConfig, features, models, popular: PopularLists,
                 index: ItemIndex, specs: ModelSpecs, metrics: ServiceMetrics | None = None,
                 clock: Callable[[], float] = time.time, fresh=None, refresher=None,
                 item_loader: ItemTableLoader | None = None,
                 experiments: ExperimentsFile | None = None, explorer: Explorer | None = None):
        self.cfg, self.features, self.models = cfg, features, models
        self.explorer = explorer or Explorer()
        self.exploration = cfg.exploration_policy  # for answers no arm gives a policy
        self.fresh = fresh  # a FreshSource (items newer than the index), or None
        self.refresher = refresher  # a VersionRefresher (follows new versions), or None
        self.popular = popular
        self.experiments = experiments or ExperimentsFile(None, cfg.rules)
        # pipelines pinned to a model version label, for arms that name one; this one's own
        # label ("" = the latest versions)
        self.labelled: dict[str, Recommender] = {}
        self.serving_label = ""
        # the item side of the ranker's inputs in memory (None: read per request)
        self.item_loader = item_loader
        self.item_table = item_loader.table if item_loader is not None else None
        self._models_state = (index, specs)
        self.metrics = metrics or ServiceMetrics()
        self.clock = clock
        self.executor = ThreadPoolExecutor(cfg.dependency_threads,
                                           thread_name_prefix="recsys-dependency")
        self.breakers = {name: CircuitBreaker(name, cfg.failure_threshold, cfg.reset_timeout_s,
                                              on_state_change=self.metrics.breaker_changed)
                         for name in (FEATURE_STORE, MODEL_SERVER, RANKER)}
        for name in self.breakers:
            self.metrics.breaker_state.labels(name).set(0)
        self.admission = threading.BoundedSemaphore(cfg.max_in_flight)
        self.user_cache: TTLCache[str, dict] = TTLCache(cfg.cache_entries, cfg.user_cache_ttl_s)
        self.item_cache: TTLCache[str, dict] = TTLCache(cfg.cache_entries, cfg.item_cache_ttl_s)
        # retrieval answers (candidates + the user's query embedding) per user, context and
        # history: a new click changes the key, so the cache never hides fresh behaviour
        self.retrieval_cache: TTLCache[tuple, tuple] = TTLCache(cfg.cache_entries,
                                                                 cfg.user_cache_ttl_s)

    def swap_models(self, index: ItemIndex, specs: ModelSpecs) -> None:
        """Serve a new version's item index and specs, swapped in together (one
        assignment)."""
        self._models_state = (index, specs)

    @property
    def index(self) -> ItemIndex:
        return self._models_state[0]

    @property
    def specs(self) -> ModelSpecs:
        return self._models_state[1]

    # -- stages ----------------------------------------------------------------------------
    def _stage(self, name: str, breaker: str, fn: Callable[[float], Any], budget_ms: float,
               deadline: Deadline, latency: dict[str, float], inline: bool = False) -> Any:
        """``fn(budget_s)`` under the dependency's breaker within the stage's budget. In a
        dependency thread, waited for at most the budget; ``inline`` (a client that enforces
        the timeout it is given itself), in this thread: no hand-over to another thread.

        A call given less than the stage's budget (the request's deadline was nearer) that
        runs out of time is not counted against the dependency by its breaker: the request
        was late (it waited in a queue, or an earlier stage was slow), not the dependency."""
        budget_s = deadline.budget_for(budget_ms / 1000.0)
        cut = budget_s < budget_ms / 1000.0
        started = time.perf_counter()
        outcome = "ok"
        try:
            if budget_s < MIN_STAGE_BUDGET_S:  # too late to start: not the dependency's fault
                raise DeadlineExceeded(name, budget_s)
            excused = _is_deadline if cut else None
            if inline:
                return self.breakers[breaker].call_excusing(excused, _deadline_named, fn,
                                                            budget_s, name)
            return self.breakers[breaker].call_excusing(
                excused, call_with_timeout, carried(lambda: fn(budget_s)), budget_s, name,
                self.executor)
        except CircuitOpen as exc:
            outcome = "circuit_open"
            raise StageFailed(name, f"circuit breaker {exc.name} is open") from exc
        except DeadlineExceeded as exc:
            outcome = "deadline"
            raise StageFailed(name, f"no answer within {exc.budget_s * 1000:.0f} ms") from exc
        except Exception as exc:  # noqa: BLE001 - any failure degrades, never fails the request
            outcome = "error"
            raise StageFailed(name, f"{type(exc).__name__}: {exc}") from exc
        finally:
            seconds = time.perf_counter() - started
            latency[name] = round(seconds * 1000, 3)
            self.metrics.stage_latency.labels(name, outcome).observe(seconds)

    def _timed(self, step: str, started: float, latency: dict[str, float]) -> None:
        """Record a step without a dependency (no breaker, no budget) that began at
        ``started``: in the answer's latencies and the stage histogram."""
        seconds = time.perf_counter() - started
        latency[step] = round(seconds * 1000, 3)
        self.metrics.stage_latency.labels(step, "ok").observe(seconds)

    def _user_features(self, user_id: str) -> dict:
        cached = self.user_cache.get(user_id)
        self.metrics.cache.labels("user_features", "hit" if cached else "miss").inc()
        if cached is not None:
            return cached
        user = self.features.user(user_id)
        self.user_cache.put(user_id, user)
        return user

    def _item_features(self, item_ids: list[str]) -> dict[str, list]:
        """Online item feature columns of ``item_ids`` through the TTL cache."""
        rows, missing = {}, []
        for item in item_ids:
            cached = self.item_cache.get(item)
            if cached is None:
                missing.append(item)
            else:
                rows[item] = cached
        if missing:
            table = self.features.items(missing)
            for i, item in enumerate(missing):
                rows[item] = {name: values[i] for name, values in table.items()}
                self.item_cache.put(item, rows[item])
        names = next(iter(rows.values())).keys() if rows else []
        return {name: [rows[i].get(name) for i in item_ids] for name in names}

    def _item_columns(self, item_ids: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The encoded item-side ranker inputs and creation times of ``item_ids``: gathered
        from the item table, and for items it does not hold, read through the TTL cache."""
        specs = self.specs.item_specs
        table = self.item_table
        if table is None or table.specs != specs:
            rows = np.full(len(item_ids), -1, dtype=np.int64)
            columns, created = encode_item_rows(self._item_features(item_ids), specs)
        else:
            rows = table.rows(item_ids)
            held = np.maximum(rows, 0)
            columns = {name: values[held] for name, values in table.columns.items()}
            created = table.created_at_s[held]
            absent = np.flatnonzero(rows < 0)
            if len(absent):
                extra, extra_created = encode_item_rows(
                    self._item_features([item_ids[i] for i in absent]), specs)
                for name, values in extra.items():
                    columns[name][absent] = values
                created[absent] = extra_created
        misses = int((rows < 0).sum())
        self.metrics.cache.labels("item_features", "hit").inc(len(item_ids) - misses)
        self.metrics.cache.labels("item_features", "miss").inc(misses)
        return columns, created

    def _retrieve(self, row: Mapping[str, Any], timeout_s: float) -> Retrieved:
        """The two-tower candidates and the query embedding."""
        answer = self.models.predict("retrieval", "retrieval",
                                     query_arrays(row, self.specs.query), timeout_s)
        if self.refresher is not None:
            self.refresher.saw(answer.version, self)
        ids = [x.decode() if isinstance(x, bytes) else str(x)
               for x in answer.outputs["item_ids"][0]]
        scores = answer.outputs["scores"][0].tolist()
        if "" in ids:  # padding: the index held fewer than k items
            kept = [n for n, i in enumerate(ids) if i]
            ids, scores = [ids[n] for n in kept], [scores[n] for n in kept]
        categories, created = self.index.categories_and_ages(ids)
        return Retrieved(tuple(ids), tuple(scores), tuple(categories), tuple(created),
                         np.asarray(answer.outputs["query_embedding"][0], dtype=np.float32),
                         answer.version)

    def _retrieve_cached(self, row: Mapping[str, Any], timeout_s: float, versions: dict
                         ) -> tuple[list[Candidate], np.ndarray]:
        """Retrieval's candidates (new objects, the caller's own) and query embedding,
        through the cache."""
        key = (row["user_id"], *(row.get(n) for n in ("device", "country", "language")),
               tuple(row["history_item_ids"]), row["hour_of_day"])
        retrieved = self.retrieval_cache.get(key)
        self.metrics.cache.labels("retrieval", "hit" if retrieved else "miss").inc()
        if retrieved is None:
            retrieved = self._retrieve(row, timeout_s)
            self.retrieval_cache.put(key, retrieved)
        versions["retrieval"] = retrieved.version
        return retrieved.candidates(), retrieved.query

    def _retrieval_scores(self, candidates: list[Candidate], query: np.ndarray) -> np.ndarray:
        """Each candidate's two-tower score: retrieval's own, else the query embedding's dot
        product with the item's indexed embedding (NaN for items outside the index)."""
        scores = np.array([c.score for c in candidates], dtype=np.float64)
        position = self.index.position
        other = [(i, position.get(c.item_id, -1)) for i, c in enumerate(candidates)
                 if c.source not in ("two-tower", "fresh")]  # not scored by this query yet
        if other:
            at, rows = (np.asarray(x, dtype=np.int64) for x in zip(*other))
            known = rows >= 0
            scores[at] = np.nan
            scores[at[known]] = self.index.vectors[rows[known]] @ query
        return scores

    def _rank(self, row: Mapping[str, Any], candidates: list[Candidate], query: np.ndarray,
              now_s: int, timeout_s: float, versions: dict,
              retrieval_weight: float | None = None,
              retrieval: np.ndarray | None = None) -> np.ndarray:
        """Fused scores of ``candidates``: the ranker's click logits fused with the two-tower
        scores over this request's candidates (``trainer.ranking.fusion.fuse``);
        ``retrieval``: those scores when already computed."""
        ids = [c.item_id for c in candidates]
        columns, created = self._item_columns(ids)
        if retrieval is None:
            retrieval = self._retrieval_scores(candidates, query)
        arrays = self.specs.ranker_encoder.encode(row, ids, columns, created, retrieval, now_s)
        answer = self.models.predict("ranker", "rank", arrays, timeout_s, outputs=("click",))
        versions["ranker"] = answer.version
        return fuse(answer.outputs["click"], arrays[RETRIEVAL_SCORE],
                    self.specs.retrieval_weight if retrieval_weight is None
                    else retrieval_weight)

    # -- candidate sources -----------------------------------------------------------------
    def _cold_start(self, user: Mapping[str, Any], history: History, context: dict,
                    preferred: list[str], excluded: set[str]) -> list[Candidate]:
        """Segment-popular items mixed with the neighbours of the centroid of the user's
        declared (or first clicked) categories."""
        n = self.cfg.cold_start_candidates
        popular, label = self.popular.for_segment(context, n, excluded)
        segment = [Candidate(p.item_id, p.score, "segment-popular", p.category,
                             self.index.created_at_of(p.item_id), [f"popular in {label}"])
                   for p in popular]
        categories = list(preferred) or [c for c in _list(user.get("user_declared_categories"))
                                         if c] or [c for c in history.categories if c]
        centroid = self.index.centroid(categories)
        near = [] if centroid is None else [
            Candidate(i, s, "category-centroid", self.index.category_of(i),
                      self.index.created_at_of(i), [f"close to {', '.join(categories[:3])}"])
            for i, s in self.index.nearest(centroid, n, excluded)]
        mixed = []  # alternate the two sources so both reach the top of an unranked list
        for pair in zip(segment, near):
            mixed.extend(pair)
        return mixed + segment[len(near):] + near[len(segment):]

    def _trending(self, context: dict, excluded: set[str], n: int | None = None
                  ) -> list[Candidate]:
        items, label = self.popular.for_segment(context, n or self.cfg.trending_candidates,
                                                excluded)
        return [Candidate(p.item_id, p.score, "trending", p.category,
                          self.index.created_at_of(p.item_id), [f"trending in {label}"])
                for p in items]

    def _popular(self, context: dict, k: int, excluded: set[str]) -> tuple[list[Candidate], str]:
        items, label = self.popular.for_segment(context, k, excluded)
        tier = "global-popular" if label == "global" else "segment-popular"
        return [Candidate(p.item_id, p.score, tier, p.category,
                          self.index.created_at_of(p.item_id), [f"popular in {label}"])
                for p in items], label

    # -- the request -----------------------------------------------------------------------
    def recommend(self, request: RecommendationRequest) -> RecommendationResult:
        """The answer to ``request`` (waits for the pipeline: no deadline guard of its own;
        a request answered before is answered again, as a copy)."""
        if request.answered:
            request = dataclasses.replace(request)
        if not self.try_admit():
            return self.shed(request)
        return self.recommend_admitted(request)

    def preview(self, request: RecommendationRequest, label: str = "") -> RecommendationResult:
        """The answer the pipeline of model version ``label`` ("" or this pipeline's own:
        this one) gives ``request``, for the console: not counted as traffic, not logged as
        an exposure, outside the admission limit. KeyError for a label not loaded."""
        pipeline = self if label in ("", self.serving_label) else self.labelled[label]
        return pipeline._recommend(request)

    def try_admit(self) -> bool:
        """Take one of the ``max_in_flight`` places in the pipeline, without waiting; the
        caller then calls ``recommend_admitted`` (which gives it back) or ``release``."""
        return self.admission.acquire(blocking=False)

    def release(self) -> None:
        """Give back a place taken by ``try_admit`` that ``recommend_admitted`` never used."""
        self.admission.release()

    def recommend_admitted(self, request: RecommendationRequest
                           ) -> RecommendationResult | None:
        """The personalised pipeline for a request holding a place (given back at the end).
        None, without running it, for a request already answered (``late``); its result is
        counted in the metrics only if the pipeline answers the request."""
        try:
            if request.answered:  # its caller gave up before a thread took it
                return None
            with measure(CpuAccount()) as cpu:
                result = self._recommend(request)
            # spent on the label's behalf whether or not this answer is the one given
            self.metrics.count_label_cpu(result.model_label, cpu.seconds)
            if request.claim():
                self._count(result.tier, result.degraded, result.latency_ms["total"] / 1000,
                            result.tier_by_arm, result.model_label)
                if result.experiments:
                    self.metrics.count_arms(result.experiments)

            return result
        finally:
            self.admission.release()

    def shed(self, request: RecommendationRequest) -> RecommendationResult:
        """The popular answer for a request over the in-flight limit (no dependency call):
        cheap enough to give on the event loop, before the request queues for a thread."""
        request.claim()
        return self._popular_answer(request, f"overload: {self.cfg.max_in_flight} requests "
                                             "already in the pipeline", request.queued_s)

    def late(self, request: RecommendationRequest, waited_s: float
             ) -> RecommendationResult | None:
        """The popular answer for an admitted request whose pipeline has not answered after
        ``waited_s`` (its deadline: a thread starved of CPU or of the GIL under load), or
        None when the pipeline claimed it first (its answer is ready: wait for it). The
        pipeline runs on, or never starts, and its answer is dropped."""
        if not request.claim():
            return None
        return self._popular_answer(
            request, f"deadline: no answer within {self.cfg.request_deadline_ms:.0f} ms",
            waited_s)

    def _popular_answer(self, request: RecommendationRequest, reason: str, waited_s: float
                        ) -> RecommendationResult:
        started = time.perf_counter()
        context = {k: v for k, v in request.context.items() if v}
        items, segment = self._popular(context, request.k, set(request.exclude))
        tier = "global-popular" if segment == "global" else "segment-popular"
        latency = {"total": round((time.perf_counter() - started) * 1000, 3)}
        if waited_s:
            latency["queued"] = round(waited_s * 1000, 3)
        assignment, arm = self.experiments.arms_for(request.user_id, context, self.clock(),
                                                    None, request.forced_arms)
        # counted under the label that was to serve it: a slow canary's late answers count
        label = arm.model_label if arm is not None and arm.model_label else self.serving_label
        self._count(tier, [reason], time.perf_counter() - started + waited_s, False, label)
        if assignment.arms:
            self.metrics.count_arms(assignment.arms)
        return RecommendationResult(request.user_id, items, tier, segment, {}, latency,
                                    [reason], False, assignment.arms, assignment.holdout,
                                    model_label=label)

    def _recommend(self, request: RecommendationRequest, explore: bool = True
                   ) -> RecommendationResult:
        cfg = self.cfg
        started = time.perf_counter()
        deadline = Deadline(max(cfg.request_deadline_ms / 1000.0 - request.queued_s, 1e-6))
        now_s = int(request.now_s if request.now_s is not None else self.clock())
        latency: dict[str, float] = {}
        versions: dict[str, int] = {}
        degraded: list[str] = []
        excluded = set(request.exclude)

        user: dict | None = None
        try:
            user = self._stage("features", FEATURE_STORE,
                               lambda _: self._user_features(request.user_id),
                               cfg.features_timeout_ms, deadline, latency)
        except StageFailed as exc:
            degraded.append(str(exc))
        history = user_history(user or {}, now_s, cfg.max_history)
        excluded.update(history.item_ids)
        context = context_values(user or {}, request.context)
        cold = user is not None and not history
        assignment, arm = self.experiments.arms_for(
            request.user_id, context, now_s, None if user is None else bool(history),
            request.forced_arms)
        interleaving = self.experiments.assigner.interleaving(assignment)
        if interleaving is not None:
            return self._interleave(request, interleaving, assignment, started)
        label = arm.model_label if arm is not None else ""
        if label != self.serving_label and label in self.labelled:
            return self.labelled[label]._recommend(request, explore)  # its own models
        pipeline = "full" if arm is None else arm.pipeline

        candidates: list[Candidate] = []
        tier = "segment-popular"
        row, query, top_score = None, None, None
        sampled = cfg.profile_sample_rate > 0 and random.random() < cfg.profile_sample_rate
        # model calls in this thread when the client holds them to their budget itself
        inline = bool(getattr(self.models, "enforces_timeouts", False))
        if user is not None and pipeline != "popular":
            row = query_row(request.user_id, user, history, context, now_s)
            try:
                retrieved, query = self._stage(
                    "retrieval", MODEL_SERVER,
                    lambda budget_s: self._retrieve_cached(row, budget_s, versions),
                    cfg.retrieval_timeout_ms, deadline, latency, inline)
                sources_started = time.perf_counter()
                if sampled and retrieved:
                    top_score = retrieved[0].score  # before ranking rescores the candidates
                if arm is not None and arm.retrieval_candidates is not None:
                    retrieved = retrieved[:arm.retrieval_candidates]
                sources = [retrieved]
                if self.fresh is not None and "retrieval" in versions:
                    sources.append(self.fresh.nearest(query, versions["retrieval"],
                                                      cfg.fresh_candidates, excluded))
                if cold:
                    sources.append(self._cold_start(user, history, context,
                                                    request.preferred_categories, excluded))
                sources.append(self._trending(context, excluded,
                                              arm.trending_candidates if arm else None))
                # every source built its candidates for this request: merged uncopied
                candidates = [c for c in merge_sources(*sources, copy=False)
                              if c.item_id not in excluded]
                # every source on the two-tower's scale: the retrieval tier's order, the
                # ranker's fusion input (a trending item's own score is a popularity count)
                retrieval_scores = self._retrieval_scores(candidates, query)
                for candidate, score in zip(candidates, retrieval_scores.tolist()):
                    candidate.score = score
                self._timed("candidates", sources_started, latency)
                tier = "retrieval"
            except StageFailed as exc:
                degraded.append(str(exc))
        if candidates and self.specs.ranker is not None and pipeline == "full":
            try:
                scores = self._stage(
                    "ranking", RANKER,
                    lambda budget_s: self._rank(row, candidates, query, now_s, budget_s,
                                                versions, arm and arm.retrieval_weight,
                                                retrieval_scores),
                    cfg.ranking_timeout_ms, deadline, latency, inline)
                for candidate, score in zip(candidates, scores):
                    candidate.score = float(score)
                tier = "full"
            except StageFailed as exc:
                degraded.append(str(exc))
        elif candidates and pipeline == "full":
            degraded.append("ranking: no ranker is served")

        rules_started = time.perf_counter()
        segment = self.popular.segment_label(context)
        if not candidates:
            candidates, segment = self._popular(context, max(3 * request.k, 50), excluded)
            tier = "global-popular" if segment == "global" else "segment-popular"
        rules = cfg.rules if arm is None else arm.rules
        policy = self.exploration if arm is None or arm.exploration is None \
            else arm.exploration
        explores = explore and policy.explores and tier in ("full", "retrieval")
        if explores:  # exploration slots replace the new-item slot; fresh items join the pool
            rules = dataclasses.replace(rules, new_item_slots=0)
        items, _ = apply_rules(candidates, request.k, now_s, excluded, rules,
                               max(policy.pool - request.k, 0) if explores else 0)
        decision = None
        if explores and len(items) >= request.k:
            explore_started = time.perf_counter()
            others = (OtherCategories(self.index, query, excluded)
                      if policy.other_categories and query is not None else None)
            items, decision = self.explorer.explore(
                policy, items, request.k, now_s, tuple(dict.fromkeys(history.categories)),
                request.seed, others)
            self._timed("exploration", explore_started, latency)
        items = items[:request.k]
        if len(items) < request.k:  # top up from the global list (never an excluded item)
            taken = excluded | {c.item_id for c in items}
            items += self._popular({}, request.k - len(items), taken)[0]
        self._timed("rules", rules_started, latency)
        latency["total"] = round((time.perf_counter() - started) * 1000, 3)
        if request.queued_s:
            latency["queued"] = round(request.queued_s * 1000, 3)
        return RecommendationResult(request.user_id, items[:request.k], tier, segment,
                                    versions, latency, degraded, cold, assignment.arms,
                                    assignment.holdout, pipeline != "full" and not degraded,
                                    decision, (row, query, top_score) if sampled and row
                                    is not None else None, self.serving_label)

    def _interleave(self, request: RecommendationRequest, experiment, assignment,
                    started: float) -> RecommendationResult:
        """Both arms' answers to ``request``, team-drafted into one list (each item names the
        arm that placed it, ``team``); the experiment's arm in the answer is
        ``interleaved``. Costs the pipeline twice (the retrieval cache serves the second)."""
        arms = [arm.name for arm in experiment.arms]
        # without exploration: the service's own policy would make the interleaved list's
        # propensities unknown (an arm's own exploration is refused by the definitions)
        answers = [self._recommend(dataclasses.replace(
            request, forced_arms={**request.forced_arms, experiment.name: arm}),
            explore=False) for arm in arms]
        ids, teams = team_draft([c.item_id for c in answers[0].items],
                                [c.item_id for c in answers[1].items], request.k,
                                random.Random())
        by_id = {c.item_id: c for answer in reversed(answers) for c in answer.items}
        items = []
        for item_id, team in zip(ids, teams):
            candidate = by_id[item_id].copy()
            candidate.team = arms[0] if team == TEAM_A else arms[1]
            items.append(candidate)
        first, second = answers
        tier = min((first.tier, second.tier), key=TIERS.index)  # the better of the two
        latency = dict(first.latency_ms)
        latency["total"] = round((time.perf_counter() - started) * 1000, 3)
        return RecommendationResult(
            request.user_id, items, tier, first.segment,
            {**second.model_versions, **first.model_versions}, latency,
            first.degraded + second.degraded, first.cold_start, dict(assignment.arms),
            assignment.holdout, first.tier_by_arm or second.tier_by_arm)

    def _count(self, tier: str, degraded: list[str], seconds: float,
               tier_by_arm: bool = False, label: str = "") -> None:
        """Count an answer (under the model ``label`` that served it, too); a tier below
        ``full`` is a fallback unless an arm chose it."""
        self.metrics.requests.labels("recommendations", tier).inc()
        self.metrics.request_latency.labels("recommendations").observe(seconds)
        self.metrics.count_label(label, tier, seconds)
        if tier != "full" and not tier_by_arm:
            reason = degraded[0].split(":", 1)[0] if degraded else "unknown"
            self.metrics.fallbacks.labels(tier, reason).inc()

    def warm_up(self, rounds: int = 3) -> None:
        """Run each model and each candidate source a few times (as for a new user), and read
        the online store once, outside any deadline
        (the first calls trace TensorFlow functions, open connections and load Feast's
        registry: the first user read alone takes about 180 ms, three times the features
        budget, and a service that took it under a deadline opened its feature store breaker
        on its first requests). A store that is down is left to the breakers."""
        now_s = int(self.clock())
        row = query_row("", {}, History(), {}, now_s)
        try:
            self.features.user("")
        except Exception as exc:  # noqa: BLE001 - not fatal at start: requests degrade
            log.warning("feature store warm-up failed: %s", exc)
        category = [str(self.index.categories[0])] if len(self.index.categories) else []
        for _ in range(rounds):
            retrieved = self._retrieve(row, 60.0)
            candidates, query = retrieved.candidates(), retrieved.query
            # a new user's path too: its sources' first calls (the category centroid's
            # neighbours, the merged popular lists) and a longer list for the ranker
            candidates = list(merge_sources(candidates, self._cold_start(
                {}, History(), {}, category, set()), self._trending({}, set())))
            if self.specs.ranker is not None and candidates:
                self._rank(row, candidates, query, now_s, 60.0, {})

    def close(self) -> None:
        for labelled in self.labelled.values():
            labelled.close()
            labelled.models.close()
        self.experiments.stop()
        self.explorer.bandit.stop()
        if self.item_loader is not None:
            self.item_loader.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _deadline_named(fn: Callable[[float], Any], budget_s: float, stage: str) -> Any:
    """``fn(budget_s)``, a model client's own timeout raised as ``DeadlineExceeded``."""
    try:
        return fn(budget_s)
    except ModelUnavailable as exc:
        if exc.reason.startswith("DEADLINE_EXCEEDED"):
            raise DeadlineExceeded(stage, budget_s) from exc
        raise


def _is_deadline(exc: Exception) -> bool:
    return isinstance(exc, DeadlineExceeded)


def _list(value: Any) -> list:
    return [] if value is None else list(value)


__all__ = ["Recommender", "RecommendationRequest", "RecommendationResult", "ModelSpecs",
           "StageFailed", "TIERS"]
