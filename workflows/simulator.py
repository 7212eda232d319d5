"""A user simulator that knows the truth: simulated users of the synthetic platform ask the
running recommendation API for recommendations, respond to what they are shown with the
platform's own response model (``recsys/data/synthetic/responses.py``: latent tastes,
language, quality, position bias; click, watch, like, skip) and send the events back through
``POST /v1/events`` with the answer's ``request_id`` and each item's position, so the stream
worker, the lake and the features see them.

The truth: for every answer the simulator knows each shown item's true click probability, so
it knows the answer's expected clicks. For every experiment whose arms change something, it
also asks for the same user's answer in each other arm (a forced-arm request, which the
service does not log as an exposure: ``experiments_overrides``) and computes that answer's
expected clicks. Summed over all requests, that is each arm's true click-through rate on
exactly the requests of the simulation (the counterfactual: every request in every arm), so
the true uplift is known, not estimated. Experiments whose arms change nothing (A/A) have a
true uplift of 0 by construction.

The clock: by default simulated days are compressed into real time (the service stamps its
exposures with the wall clock, the events carry it too); a day is one pass over the users who
are active on it. With ``start_s`` set, the simulation keeps its own clock instead: day d
is the 24 hours from ``start_s + d * 86,400``, each of a user's sessions falls at a seeded
time of the day, and each request carries that time as ``now_s`` (the service must run with
``client_clock``) and each event its time, so sessions end, day aggregates roll over and the
exposures land on their simulated day. A day's sessions are served in the order of their
times (a few at once, ``concurrency``), so a user's next session comes after the stream has
taken their last one's events, as it would hours later.

Organic sessions (``organic_share``): on a real platform users also find items without the
recommender (search, browsing, a shared link), and those events land in the same stream.
Such a session sends no request; the platform's own behaviour (the one that made the
synthetic history: a category from the user's true tastes, or at times any, their language,
popular and new items) picks ``k`` items, and the user's response to them is sent as events
without a ``request_id``. They are not in the truth, which measures what the service showed.

Guarantees: the users' choices (who is active, which sessions, what they do with each shown
item) are a pure function of ``seed`` and what the service answered.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import requests

from recsys.data.synthetic import SyntheticConfig
from recsys.data.synthetic.behaviour import ItemSampler, draw_category_and_language
from recsys.data.synthetic.generator import SyntheticPlatform
from recsys.data.synthetic.responses import (
    SKIP_BELOW_FRACTION,
    affinity,
    click_probability,
    like_probability,
    mean_watch_fraction,
    watch_fraction,
)
from recsys.data.synthetic.vocabulary import DEVICE_NAMES, LANGUAGES, country_table
from recsys.errors import RecsysError
from recsys.experiments.definitions import Experiments

log = logging.getLogger(__name__)
EVENT_BATCH = 1000


class SimulationError(RecsysError):
    """The API could not be driven (unreachable, or it refused the simulator's requests)."""


@dataclass(frozen=True)
class SimulationConfig:
    """users: how many of the platform's users take part (a seeded sample); active_share: the
    chance each is active on a simulated day; sessions: mean requests per active user-day
    (1 + Poisson); k: items asked for per request."""

    days: int = 3
    users: int = 300
    active_share: float = 0.7
    sessions: float = 1.5
    k: int = 10
    concurrency: int = 4
    seed: int = 7
    timeout_s: float = 10.0
    start_s: float | None = None  # the simulated clock's day 0 (Unix s); None: compressed
    # the chance a session finds its items without the recommender (search, browsing, a
    # shared link): the platform's own behaviour picks them from the user's true tastes, as
    # in the synthetic history, and their events carry no request_id
    organic_share: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.organic_share <= 1.0:
            raise SimulationError(f"organic_share must be in [0, 1], got {self.organic_share}")


SECONDS_PER_DAY = 86_400


@dataclass
class ArmTruth:
    expected_clicks: float = 0.0
    shown: int = 0
    users: set = field(default_factory=set)

    @property
    def ctr(self) -> float:
        return self.expected_clicks / self.shown if self.shown else float("nan")


@dataclass
class DayReport:
    day: int
    requests: int
    events_sent: int
    events_rejected: int
    seconds: float
    expected_clicks: float = 0.0  # the truth: summed click probabilities of what was shown
    shown: int = 0
    tiers: dict = field(default_factory=dict)  # the service's tier -> answers
    organic_sessions: int = 0  # sessions that found their items without the recommender

    @property
    def true_ctr(self) -> float:
        return self.expected_clicks / self.shown if self.shown else float("nan")


class Population:
    """The synthetic platform's users and items, with their ids and request contexts."""

    def __init__(self, cfg: SyntheticConfig):
        platform = SyntheticPlatform(cfg)
        self.cfg, self.users, self.items = cfg, platform.users, platform.items
        self.user_ids = platform.users_table.column("user_id").to_pylist()
        self.item_ids = platform.items_table.column("item_id").to_pylist()
        self.item_index = {item: n for n, item in enumerate(self.item_ids)}
        countries, _ = country_table()
        languages = list(LANGUAGES)
        self._samplers: dict[int, ItemSampler] = {}
        self.contexts = [{"device": DEVICE_NAMES[self.users.device[u]],
                          "country": countries[self.users.country[u]],
                          "language": languages[self.users.language[u]]}
                         for u in range(self.users.n)]

    def shifted(self, seed: int, new_country: str = "NZ", country_share: float = 0.3
                ) -> "Population":
        """The same users after a population shift: every user's tastes move to other
        categories (category c's share of each user's taste goes to category perm(c), one
        derangement for all users, so the move is learnable from what they then engage
        with), and ``country_share`` of them now ask from ``new_country``, a country the
        platform never had. Items, languages and devices stay."""
        import copy

        rng = np.random.default_rng([seed, 9])
        n_categories = self.users.taste.shape[1]
        perm = rng.permutation(n_categories)
        while np.any(perm == np.arange(n_categories)):  # no category keeps its fans
            perm = rng.permutation(n_categories)
        out = copy.copy(self)
        out.users = copy.copy(self.users)
        taste = np.empty_like(self.users.taste)
        taste[:, perm] = self.users.taste
        out.users.taste = taste
        moved = rng.random(self.users.n) < country_share
        out.contexts = [{**c, "country": new_country} if moved[u] else c
                        for u, c in enumerate(self.contexts)]
        out.taste_permutation = perm
        return out

    def browse(self, u: int, day: int, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` items user ``u`` finds without the recommender on simulated day ``day`` (the
        day after the synthetic window is day 0), drawn as the synthetic history draws what
        its users see: a category from their true tastes (or, at times, any), an item of
        their own language (or, at times, any), by popularity and novelty."""
        platform_day = self.cfg.days + day
        sampler = self._samplers.get(platform_day)
        if sampler is None:
            sampler = self._samplers[platform_day] = ItemSampler(self.items, platform_day,
                                                                 self.cfg.categories)
        taste = np.broadcast_to(self.users.taste[u], (n, self.users.taste.shape[1]))
        category, language = draw_category_and_language(
            taste, np.full(n, self.users.language[u]), rng)
        return [self.item_ids[i] for i in sampler.draw(category, language, rng)]

    def click_probabilities(self, u: int, item_ids: list[str]) -> np.ndarray:
        """True P(click) of each shown item at its position (0 for an item the platform does
        not know, e.g. one posted through the API)."""
        index = np.array([self.item_index.get(i, -1) for i in item_ids], dtype=np.int64)
        known = index >= 0
        p = np.zeros(len(item_ids))
        if known.any():
            users = np.full(int(known.sum()), u)
            p[known] = click_probability(self.users, self.items, users, index[known],
                                         np.flatnonzero(known).astype(np.float64),
                                         self.cfg.categories)
        return p


    def reference_ctrs(self, users: np.ndarray, k: int, seed: int = 0) -> dict[str, float]:
        """The true CTR of two reference lists of ``k`` for ``users``, at positions 0..k-1:
        ``random`` (k catalogue items drawn uniformly) and ``oracle`` (the k items with the
        highest true click probability for the user: no recommender does better)."""
        rng = np.random.default_rng([seed, 11])
        n_items, positions = self.items.n, np.arange(k, dtype=np.float64)
        every = np.arange(n_items)
        random_p, oracle_p = [], []
        for u in users:
            drawn = rng.choice(n_items, k, replace=False)
            random_p.append(click_probability(self.users, self.items, np.full(k, u), drawn,
                                              positions, self.cfg.categories).mean())
            p = click_probability(self.users, self.items, np.full(n_items, u), every,
                                  np.zeros(n_items), self.cfg.categories)
            best = np.argpartition(-p, k)[:k]
            best = best[np.argsort(-p[best])]
            oracle_p.append(click_probability(self.users, self.items, np.full(k, u), best,
                                              positions, self.cfg.categories).mean())
        return {"random": float(np.mean(random_p)), "oracle": float(np.mean(oracle_p))}


class Simulator:
    """Drives the API at ``url`` with ``population``'s users; see the module docstring."""

    def __init__(self, url: str, population: Population, experiments: Experiments,
                 cfg: SimulationConfig = SimulationConfig()):
        self.url, self.population, self.cfg = url.rstrip("/"), population, cfg
        if cfg.start_s is not None and cfg.start_s + cfg.days * SECONDS_PER_DAY > time.time():
            end = dt.datetime.fromtimestamp(cfg.start_s + cfg.days * SECONDS_PER_DAY,
                                            dt.timezone.utc)
            raise SimulationError(f"the simulated clock's {cfg.days} days would end at "
                                  f"{end.isoformat()}, in the future: the service and the "
                                  "lake refuse times ahead of theirs; start earlier")
        rng = np.random.default_rng([cfg.seed, 0])
        n = min(cfg.users, population.users.n)
        self.sample = np.sort(rng.choice(population.users.n, n, replace=False))
        # experiments whose arms change something: their truth needs counterfactual answers
        self.changing = {e.name: [a.name for a in e.arms] for e in experiments.experiments
                         if e.changed()}
        self.truth: dict[str, dict[str, ArmTruth]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._events: list[dict] = []
        # in event and session ids: a second run of the same seed is new behaviour, not a
        # redelivery the stream would drop as duplicates
        self.run_id = uuid.uuid4().hex[:8]
        self.sent = self.rejected = self.requests = self.organic_sessions = 0
        self.expected_clicks, self.shown = 0.0, 0
        self.tiers: Counter = Counter()

    # --- HTTP ---------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _recommend(self, user_id: str, context: dict, arms: dict | None = None,
                   now_s: float | None = None) -> dict:
        body = {"user_id": user_id, "k": self.cfg.k, "context": context}
        if arms:
            body["arms"] = arms
        if now_s is not None:
            body["now_s"] = now_s
        try:
            response = self._session().post(f"{self.url}/v1/recommendations", json=body,
                                            timeout=self.cfg.timeout_s)
        except requests.RequestException as exc:
            raise SimulationError(f"the API at {self.url} cannot be reached: {exc}") from exc
        if response.status_code != 200:
            raise SimulationError(f"POST /v1/recommendations answered {response.status_code}: "
                                  f"{response.text[:300]}")
        return response.json()

    def _post_events(self, events: list[dict]) -> None:
        for start in range(0, len(events), EVENT_BATCH):
            batch = events[start:start + EVENT_BATCH]
            try:
                response = self._session().post(f"{self.url}/v1/events",
                                                json={"events": batch},
                                                timeout=self.cfg.timeout_s * 3)
            except requests.RequestException as exc:
                raise SimulationError(f"POST /v1/events failed: {exc}") from exc
            if response.status_code != 200:
                raise SimulationError(f"POST /v1/events answered {response.status_code}: "
                                      f"{response.text[:300]}")
            result = response.json()
            with self._lock:
                self.sent += result["accepted"] + result["duplicates"]
                self.rejected += result["rejected"]

    def _queue_events(self, events: list[dict], flush: bool = False) -> None:
        with self._lock:
            self._events.extend(events)
            if not flush and len(self._events) < EVENT_BATCH:
                return
            batch, self._events = self._events, []
        if batch:
            self._post_events(batch)

    # --- one user-day -------------------------------------------------------------------
    def _sessions(self, rng: np.random.Generator) -> int:
        """A user-day's session count: its first draw from the user-day's ``rng``."""
        return 1 + int(rng.poisson(max(self.cfg.sessions - 1, 0.0)))

    def _session_times(self, day: int, u: int) -> list[float] | None:
        """When each of the user's sessions of ``day`` starts (Unix s, ascending), on the
        simulated clock; None on the compressed one. The count is the user-day's own."""
        if self.cfg.start_s is None:
            return None
        sessions = self._sessions(np.random.default_rng([self.cfg.seed, 1, day, int(u)]))
        offsets = np.sort(np.random.default_rng([self.cfg.seed, 3, day, int(u)]).uniform(
            0, SECONDS_PER_DAY, sessions))
        return [float(self.cfg.start_s + day * SECONDS_PER_DAY + o) for o in offsets]

    def _user_day(self, day: int, u: int) -> int:
        """The compressed clock: all the user's sessions of the day, one after the other."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, 1, day, int(u)])
        sessions = self._sessions(rng)
        for s in range(sessions):
            self._visit(rng, day, u, s, None)
        return sessions

    def _visit(self, rng: np.random.Generator, day: int, u: int, s: int,
               now_s: float | None) -> None:
        """One session of user ``u`` at ``now_s`` (None: now): a request and the user's
        response to it, or (``organic_share``) items found without the recommender."""
        pop = self.population
        user_id, context = pop.user_ids[u], pop.contexts[u]
        session_id = f"sim{self.cfg.seed}-{self.run_id}-{day}-{u}-{s}"
        shown_at = (dt.datetime.now(dt.timezone.utc) if now_s is None
                    else dt.datetime.fromtimestamp(now_s, dt.timezone.utc))
        # its own generator, so that organic_share 0 leaves every other draw as it was
        organic = np.random.default_rng([self.cfg.seed, 5, day, int(u), s])
        if organic.random() < self.cfg.organic_share:
            items = pop.browse(u, day, self.cfg.k, organic)
            events = self._respond(organic, u, user_id, context, {"request_id": None}, items,
                                   pop.click_probabilities(u, items), session_id, shown_at)
            with self._lock:
                self.organic_sessions += 1
            self._queue_events(events)
            return
        answer = self._recommend(user_id, context, now_s=now_s)
        items = [i["item_id"] for i in answer["items"]]
        p = pop.click_probabilities(u, items)
        self._record_truth(u, user_id, context, answer, p, now_s)
        events = self._respond(rng, u, user_id, context, answer, items, p, session_id,
                               shown_at)
        self._queue_events(events)

    def _clocked_session(self, day: int, u: int, s: int, now_s: float) -> None:
        """The simulated clock: one session, its draws seeded by the session itself."""
        rng = np.random.default_rng([self.cfg.seed, 4, day, int(u), s])
        self._visit(rng, day, u, s, round(now_s, 3))

    def _record_truth(self, u: int, user_id: str, context: dict, answer: dict,
                      p: np.ndarray, now_s: float | None = None) -> None:
        served = answer.get("experiments") or {}
        rows = []
        for experiment, arm in served.items():
            rows.append((experiment, arm, float(p.sum()), len(p)))
            for other in self.changing.get(experiment, ()):
                if other == arm:
                    continue
                alt = self._recommend(user_id, context, {experiment: other}, now_s)
                alt_items = [i["item_id"] for i in alt["items"]]
                q = self.population.click_probabilities(u, alt_items)
                rows.append((experiment, other, float(q.sum()), len(q)))
        with self._lock:
            self.requests += 1
            self.tiers[answer.get("tier", "unknown")] += 1
            self.expected_clicks += float(p.sum())
            self.shown += len(p)
            for experiment, arm, clicks, shown in rows:
                truth = self.truth.setdefault(experiment, {}).setdefault(arm, ArmTruth())
                truth.expected_clicks += clicks
                truth.shown += shown
                truth.users.add(user_id)

    def _respond(self, rng: np.random.Generator, u: int, user_id: str, context: dict,
                 answer: dict, items: list[str], p: np.ndarray, session_id: str,
                 now: dt.datetime) -> list[dict]:
        pop = self.population
        request_id = answer["request_id"]
        clicked = rng.random(len(items)) < p
        events = []

        def event(kind: str, position: int, item: str, offset_us: int, **values) -> dict:
            when = now + dt.timedelta(microseconds=offset_us)
            shown_in = {} if request_id is None else {"request_id": request_id}
            return {"event_id": f"{session_id}-{position}-{kind}", "user_id": user_id,
                    "item_id": item, "event_type": kind, "timestamp": when.isoformat(),
                    "session_id": session_id, "position": position, **shown_in,
                    **context, **values}

        for position, item in enumerate(items):
            events.append(event("impression", position, item, position))
            n = pop.item_index.get(item)
            if not clicked[position] or n is None:
                continue
            us, it = np.array([u]), np.array([n])
            frac = float(watch_fraction(
                mean_watch_fraction(pop.users, pop.items, us, it, pop.cfg.categories), rng)[0])
            watch_s = frac * float(pop.items.duration_s[n])
            dwell_s = watch_s + float(rng.lognormal(2.0, 0.7))
            base = 100 + 10 * position
            events.append(event("click", position, item, base, dwell_time_s=round(dwell_s, 3)))
            if watch_s > 0:
                events.append(event("watch", position, item, base + 1,
                                    watch_time_s=round(watch_s, 3)))
            item_affinity = affinity(pop.users, pop.items, us, it, pop.cfg.categories)
            liked = rng.random() < float(like_probability(np.array([frac]), item_affinity)[0])
            if liked:
                events.append(event("like", position, item, base + 2))
            elif frac < SKIP_BELOW_FRACTION:
                events.append(event("skip", position, item, base + 2))
        return events

    # --- days ---------------------------------------------------------------------------
    def run_day(self, day: int) -> DayReport:
        """One simulated day: every active sampled user's sessions, events sent."""
        started = time.perf_counter()
        before_requests, before_sent = self.requests, self.sent
        before_clicks, before_shown = self.expected_clicks, self.shown
        before_tiers = Counter(self.tiers)
        before_organic = self.organic_sessions
        rng = np.random.default_rng([self.cfg.seed, 2, day])
        active = self.sample[rng.random(len(self.sample)) < self.cfg.active_share]
        active = rng.permutation(active)  # users arrive mixed, not in sign-up order
        with ThreadPoolExecutor(self.cfg.concurrency) as pool:
            if self.cfg.start_s is None:
                list(pool.map(lambda u: self._user_day(day, int(u)), active))
            else:  # every session of the day in the order of its time
                sessions = sorted((t, int(u), s) for u in active
                                  for s, t in enumerate(self._session_times(day, int(u))))
                list(pool.map(lambda ts: self._clocked_session(day, ts[1], ts[2], ts[0]),
                              sessions))
        self._queue_events([], flush=True)
        return DayReport(day, self.requests - before_requests, self.sent - before_sent,
                         self.rejected, time.perf_counter() - started,
                         self.expected_clicks - before_clicks, self.shown - before_shown,
                         dict(self.tiers - before_tiers),
                         self.organic_sessions - before_organic)

    def truth_of(self, experiment: str) -> dict[str, dict[str, float]]:
        """Each arm's true CTR and expected clicks per request over every simulated request
        of the experiment's users (A/A: the served arms, whose true values are equal)."""
        arms = self.truth.get(experiment, {})
        return {arm: {"ctr": t.ctr, "expected_clicks": t.expected_clicks, "shown": t.shown,
                      "users": len(t.users)} for arm, t in arms.items()}


__all__ = ["Simulator", "SimulationConfig", "Population", "DayReport", "SimulationError",
           "ArmTruth"]
