"""Benchmark: model server predict latency and throughput, REST vs gRPC vs in-process.

    python benchmarks/model_server.py [--models retrieval retrieval_portable]
        [--concurrency 1 8 32] [--duration 8] [--warmup 1] [--workdir DIR]
        [--server-flag=--enable_batching --server-flag=--batching_parameters_file=FILE]

What it measures, for each exported model (``retrieval``: ScaNN index; ``retrieval_portable``:
brute force, stock ops) and each concurrency (closed loop: every client thread sends its next
request as soon as the previous one answers):

* ``rest``: ``POST /v1/models/<name>:predict`` with the ``instances`` row format (NaN for a
  missing float), one ``requests.Session`` per client thread; the JSON answer is parsed;
* ``grpc``: ``PredictionService/Predict`` with ``tf.make_tensor_proto`` inputs, one channel
  shared by all client threads, a stub per thread;
* ``in-process``: the same SavedModel loaded here (``tf.saved_model.load``) and its
  ``retrieval`` signature called from the client threads, outputs converted to NumPy;
* ``servable``: what the model server runs behind both APIs, here in this process
  (``serving.servable.Servable``: checks the inputs, and answers a ScaNN export with an ONNX
  query tower on ONNX Runtime and the export's searcher); the floor of ``grpc``.

Every request is one query (batch 1), taken in rotation from ``--queries`` distinct training
examples of a small synthetic platform (Feast point-in-time features). Per cell: ``--warmup``
seconds unmeasured, then ``--duration`` seconds measured; reported are p50/p99 latency (ms),
requests/s, errors (must be 0) and the CPU seconds per wall second used by the server process
and by this (client) process over the measured window.

The server is ``recsys model-server`` (``--model_config_file``) in a separate process, so it
does not share this process's GIL; it is stopped before the in-process runs. Client and server
share the machine's cores (2 here): at high concurrency the Python clients' own CPU use is part
of what limits throughput, so the numbers are a lower bound on what the server alone sustains.

Where the data comes from: a small synthetic platform goes through the real project path
(generator -> lake -> Beam features -> feast apply -> ``trainer.workflow.train`` ->
``trainer.workflow.export``), all kept and reused under ``--workdir`` when given. TF threads are
TF's defaults in both the server and the in-process runs unless ``--tf-threads`` pins them
(in the server with ``--tensorflow_intra_op_parallelism``/``--tensorflow_inter_op_parallelism``).
Prints a table, writes JSON (default benchmarks/results/model_server.json) and a
plot next to it (.png).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
from small_platform import build_platform

from serving.recommendations.http_server import free_port

ROOT = Path(__file__).resolve().parents[1]
RECSYS = ROOT / ".venv" / "bin" / "recsys"
SIGNATURE = "retrieval"
MODES = ("rest", "grpc", "in-process", "servable")
CHECK_QUERIES = 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
Factory = Callable[[], Callable[[int], list]]  # per client thread: call(query index)
NOTE = ("client and server share the same {cpus} cores: client CPU is part of the cost, "
        "and server numbers are a lower bound on a dedicated server")


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads); this process if None."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# -- the platform, the model and its export ---------------------------------------------------
def _exported(repo: Path, model_dir: Path, base: Path, epochs: int, k: int, data) -> int:
    """Train (unless a checkpoint exists) and export (unless both models are exported) under
    ``base``; the version served."""
    from small_platform import train_once

    from trainer import workflow

    train_once(repo, model_dir, epochs, data)

    def versions(name: str) -> set[int]:
        path = base / name
        return {int(p.name) for p in path.iterdir() if p.name.isdigit()} if path.is_dir() \
            else set()

    common = versions("retrieval") & versions("retrieval_portable")
    if common:
        print(f"reusing version {max(common)} of the models in {base}", flush=True)
        return max(common)
    start = time.perf_counter()
    result = workflow.export(repo, model_dir, base, k=k)
    print(f"exported version {result.version} ({result.items:,} items, k={k}) in "
          f"{time.perf_counter() - start:.1f}s", flush=True)
    return result.version


def _queries(train, cfg, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``n`` distinct training examples as query-tower inputs, one batch-of-1 dict each."""
    from recsys.model_contract.arrays import to_arrays
    from recsys.model_contract.feature_spec import query_inputs

    rows = np.random.default_rng(seed).choice(len(train), size=min(n, len(train)),
                                              replace=False)
    arrays = to_arrays(train.iloc[np.sort(rows)].reset_index(drop=True), query_inputs(cfg),
                       "train examples")
    return [{name: values[i:i + 1] for name, values in arrays.items()}
            for i in range(len(rows))]


# -- request encodings ------------------------------------------------------------------------
def _rest_body(query: dict[str, np.ndarray]) -> bytes:
    """A TF Serving row-format body; NaN (a missing float) is written as the bare token NaN."""
    row = {name: (values[0].tolist() if values.ndim > 1 else values[0].item()
                  if hasattr(values[0], "item") else values[0])
           for name, values in query.items()}
    return json.dumps({"signature_name": SIGNATURE, "instances": [row]}).encode()


def _grpc_request(model: str, query: dict[str, np.ndarray]):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = SIGNATURE
    for name, value in query.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


# -- the server process -----------------------------------------------------------------------
class ServerProcess:
    """``recsys model-server`` serving ``models`` (name -> base path) in a child process."""

    def __init__(self, models: dict[str, Path], workdir: Path, tf_threads: int,
                 flags: list[str] = ()):
        self.models = models
        self.grpc_port, self.rest_port = free_port(), free_port()
        self.config = workdir / "model_server.config"
        self.config.write_text("model_config_list {\n" + "".join(
            f'  config {{ name: "{name}" base_path: "{path.resolve()}" '
            f'model_platform: "tensorflow" }}\n' for name, path in models.items()) + "}\n")
        self.log = workdir / "model_server.log"
        self.command = [str(RECSYS), "model-server", f"--port={self.grpc_port}",
                        f"--rest_api_port={self.rest_port}",
                        f"--model_config_file={self.config}",
                        "--file_system_poll_wait_seconds=0", "--host=127.0.0.1", *flags]
        if tf_threads:
            self.command += [f"--tensorflow_intra_op_parallelism={tf_threads}",
                             f"--tensorflow_inter_op_parallelism={tf_threads}"]
        self.process: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.rest_port}{path}"

    def __enter__(self) -> ServerProcess:
        import requests

        start = time.perf_counter()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=ROOT)
        deadline = time.monotonic() + 300
        waiting = set(self.models)
        while waiting:
            if self.process.poll() is not None:
                raise RuntimeError(f"the model server exited with {self.process.returncode}:\n"
                                   + self.log.read_text()[-3000:])
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"models {sorted(waiting)} not AVAILABLE after 300 s:\n"
                                   + self.log.read_text()[-3000:])
            for name in sorted(waiting):
                try:
                    status = requests.get(self.url(f"/v1/models/{name}"), timeout=5).json()
                except (requests.RequestException, ValueError):
                    break
                states = [s.get("state") for s in status.get("model_version_status", [])]
                if "AVAILABLE" in states:
                    waiting.discard(name)
            else:
                continue
            time.sleep(0.2)
        print(f"model server pid {self.process.pid} ready in {time.perf_counter() - start:.1f}s "
              f"(gRPC {self.grpc_port}, REST {self.rest_port})", flush=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: the CLI stops the server and exits
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


# -- clients: a factory per mode returns a per-thread call(i) ---------------------------------
def _ids(values: np.ndarray) -> list[str]:
    """The item ids of the first (only) query of a string output, as str."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values[0]]


def _rest_client(server: ServerProcess, model: str, queries: list) -> Factory:
    import requests

    url = server.url(f"/v1/models/{model}:predict")
    bodies = [_rest_body(q) for q in queries]
    headers = {"Content-Type": "application/json"}

    def factory():
        session = requests.Session()

        def call(i: int):
            response = session.post(url, data=bodies[i], headers=headers, timeout=60)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            predictions = response.json()["predictions"]
            if len(predictions) != 1:
                raise RuntimeError(f"{len(predictions)} predictions for 1 instance")
            return predictions[0]["item_ids"]
        return call
    return factory


def _grpc_client(channel, model: str, queries: list) -> Factory:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    requests_ = [_grpc_request(model, q) for q in queries]

    def factory():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def call(i: int):
            response = stub.Predict(requests_[i], timeout=60)
            return _ids(tf.make_ndarray(response.outputs["item_ids"]))
        return call
    return factory


def _local_client(function, queries: list) -> Factory:
    import tensorflow as tf

    def factory():
        def call(i: int):
            outputs = function(**{k: tf.constant(v) for k, v in queries[i].items()})
            result = {k: v.numpy() for k, v in outputs.items()}
            return _ids(result["item_ids"])
        return call
    return factory


def _servable_client(servable, queries: list) -> Factory:
    signature = servable.signature(SIGNATURE)
    arrays = [{k: np.asarray(v) for k, v in q.items()} for q in queries]

    def factory():
        def call(i: int):
            return _ids(servable.run(signature, arrays[i])["item_ids"])
        return call
    return factory


def _run_cell(factory, n_queries: int, concurrency: int, warmup: float, duration: float,
              server_pid: int | None) -> dict:
    """Closed-loop load from ``concurrency`` threads; latencies of the measured window."""
    window: dict[str, float] = {}

    def open_window():
        now = time.perf_counter()
        window.update(start=now, measure=now + warmup, end=now + warmup + duration)

    barrier = threading.Barrier(concurrency, action=open_window)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    messages: list[str] = []

    def worker(t: int):
        call = factory()
        barrier.wait()
        i, measure, end, mine = t * max(1, n_queries // concurrency), window["measure"], \
            window["end"], latencies[t]
        while True:
            began = time.perf_counter()
            if began >= end:
                break
            try:
                call(i % n_queries)
            except Exception as exc:  # noqa: BLE001  (counted and reported, never hidden)
                errors[t] += 1
                if len(messages) < 3:
                    messages.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            else:
                if began >= measure:
                    mine.append(time.perf_counter() - began)
            i += 1

    threads = [threading.Thread(target=worker, args=(t,), daemon=True)
               for t in range(concurrency)]
    for thread in threads:
        thread.start()
    while "measure" not in window:
        time.sleep(0.001)
    time.sleep(max(0.0, window["measure"] - time.perf_counter()))
    cpu0 = (_cpu_seconds(server_pid) if server_pid else 0.0, _cpu_seconds(None))
    time.sleep(max(0.0, window["end"] - time.perf_counter()))
    cpu1 = (_cpu_seconds(server_pid) if server_pid else 0.0, _cpu_seconds(None))
    for thread in threads:
        thread.join(timeout=120)
    lat = np.concatenate([np.asarray(x) for x in latencies]) * 1000
    return {"concurrency": concurrency, "requests": int(len(lat)),
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
            "mean_ms": float(lat.mean()) if len(lat) else None,
            "requests_per_s": len(lat) / duration, "errors": int(sum(errors)),
            "error_samples": messages,
            "server_cpu_per_wall": (cpu1[0] - cpu0[0]) / duration if server_pid else None,
            "client_cpu_per_wall": (cpu1[1] - cpu0[1]) / duration}


def _print_row(model: str, mode: str, r: dict) -> None:
    server = "-" if r["server_cpu_per_wall"] is None else f"{r['server_cpu_per_wall']:.2f}"
    p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.2f}"
    p99 = "-" if r["p99_ms"] is None else f"{r['p99_ms']:.2f}"
    print(f"{model:<20}{mode:<12}{r['concurrency']:>5}{r['requests']:>9,}{p50:>10}{p99:>10}"
          f"{r['requests_per_s']:>10,.1f}{r['errors']:>8}{server:>9}"
          f"{r['client_cpu_per_wall']:>9.2f}", flush=True)


def _header() -> None:
    print(f"{'model':<20}{'mode':<12}{'conc':>5}{'requests':>9}{'p50 ms':>10}{'p99 ms':>10}"
          f"{'req/s':>10}{'errors':>8}{'srv cpu':>9}{'cli cpu':>9}")


def _plot(results: list[dict], path: Path, cpus: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, (lat_ax, qps_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    series = sorted({(r["model"], r["mode"]) for r in results},
                    key=lambda s: (s[0], MODES.index(s[1])))
    colours = {"rest": "tab:blue", "grpc": "tab:green", "in-process": "tab:red",
               "servable": "tab:purple"}
    markers = ["o", "s", "^", "D"]
    models = sorted({m for m, _ in series})
    for model, mode in series:
        rows = sorted((r for r in results if (r["model"], r["mode"]) == (model, mode)),
                      key=lambda r: r["concurrency"])
        xs = [r["concurrency"] for r in rows]
        marker = markers[models.index(model) % len(markers)]
        label = f"{model} {mode}"
        colour = colours[mode]
        lat_ax.plot(xs, [r["p50_ms"] for r in rows], "-" + marker, color=colour,
                    label=f"{label} p50")
        lat_ax.plot(xs, [r["p99_ms"] for r in rows], "--" + marker, color=colour,
                    alpha=0.6, label=f"{label} p99")
        qps_ax.plot(xs, [r["requests_per_s"] for r in rows], "-" + marker, color=colour,
                    label=label)
    for ax in (lat_ax, qps_ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["concurrency"] for r in results}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("concurrent clients (closed loop, batch of 1)")
        ax.grid(True, which="both", alpha=0.3)
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("latency per request (ms)")
    lat_ax.set_title("p50 (solid) and p99 (dashed)")
    qps_ax.set_ylabel("requests/s")
    qps_ax.set_ylim(bottom=0)
    qps_ax.set_title("throughput")
    lat_ax.legend(fontsize=7)
    qps_ax.legend(fontsize=7)
    fig.suptitle(f"recsys model-server vs in-process SavedModel "
                 f"(client and server share {cpus} cores)")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["retrieval"],
                        choices=["retrieval", "retrieval_portable"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=8.0,
                        help="measured seconds per cell (default 8)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="unmeasured seconds before each cell (default 1)")
    parser.add_argument("--queries", type=int, default=200,
                        help="distinct queries sent in rotation (default 200)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep (and reuse) the small platform, model and export here "
                             "(default: a temporary directory)")
    parser.add_argument("--users", type=int, default=2_000, help="small platform users")
    parser.add_argument("--items", type=int, default=5_000, help="small platform items")
    parser.add_argument("--days", type=int, default=7, help="small platform days")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=100,
                        help="k of the export (default 100, as `recsys export`)")
    parser.add_argument("--tf-threads", type=int, default=0,
                        help="pin TF intra- and inter-op threads, in-process and in the server "
                             "(0, the default: TF's defaults, as the server ships)")
    parser.add_argument("--server-flag", dest="server_flags", action="append", default=[],
                        metavar="FLAG", help="one more flag for the model server, written "
                        "--server-flag=--enable_batching (repeat for more)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "model_server.json")
    args = parser.parse_args()
    concurrency = sorted(set(args.concurrency))
    if concurrency[0] < 1 or args.duration <= 0 or args.warmup < 0 or args.queries < 1:
        parser.error("--concurrency must be >= 1, --duration > 0, --warmup >= 0, "
                     "--queries >= 1")
    if not RECSYS.exists():
        parser.error(f"{RECSYS} not found: install the project into .venv")

    import recsys  # noqa: F401  (before tensorflow: tf.keras is Keras 2)

    import tensorflow as tf  # noqa: I001 (after recsys)

    if args.tf_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.tf_threads)
    import grpc
    import scann  # noqa: F401  (registers the Scann ops: the ScaNN model loads in-process)

    from recsys.data.synthetic import SyntheticConfig
    from trainer.model_dir import ModelDir
    from trainer.training_data import load_retrieval_data

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    cpus = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    synthetic = SyntheticConfig(users=args.users, items=args.items, days=args.days,
                                end_date=dt.date(2026, 11, 1))
    results, checks = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        repo = build_platform(workdir, synthetic)
        data = load_retrieval_data(repo.resolve())
        model_dir, base = workdir / "two_tower", workdir / "models"
        version = _exported(repo, model_dir, base, args.epochs, args.top_k, data)
        cfg = ModelDir(model_dir).read_config()
        queries = _queries(data.train, cfg.model, args.queries, seed=0)
        del data
        gc.collect()
        setup_s = time.perf_counter() - started
        print(f"{len(queries)} distinct queries (batch 1); {args.warmup:g}s warm-up + "
              f"{args.duration:g}s measured per cell; {cpus} cores shared by client and "
              f"server", flush=True)
        _header()

        server_modes = [m for m in args.modes if m not in ("in-process", "servable")]
        answers: dict[tuple[str, str], list] = {}
        if server_modes:
            with ServerProcess({m: base / m for m in args.models}, workdir,
                               args.tf_threads, args.server_flags) as server:
                command = server.command
                channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
                for model in args.models:
                    factories = {"rest": _rest_client(server, model, queries),
                                 "grpc": _grpc_client(channel, model, queries)}
                    for mode in server_modes:
                        call = factories[mode]()
                        answers[(model, mode)] = [call(i) for i in range(CHECK_QUERIES)]
                        for c in concurrency:
                            row = _run_cell(factories[mode], len(queries), c, args.warmup,
                                            args.duration, server.process.pid)
                            results.append({"model": model, "mode": mode, **row})
                            _print_row(model, mode, row)
                channel.close()
        else:
            command = None
        def local_cells(model: str, mode: str, factory) -> None:
            call = factory()
            answers[(model, mode)] = [call(i) for i in range(CHECK_QUERIES)]
            for c in concurrency:
                row = _run_cell(factory, len(queries), c, args.warmup, args.duration, None)
                results.append({"model": model, "mode": mode, **row})
                _print_row(model, mode, row)

        if "in-process" in args.modes:
            for model in args.models:
                loaded = tf.saved_model.load(str(base / model / str(version)))
                local_cells(model, "in-process",
                            _local_client(loaded.signatures[SIGNATURE], queries))
                del loaded
                gc.collect()
        if "servable" in args.modes:
            from serving.servable import Servable

            for model in args.models:
                servable = Servable(model, version, base / model / str(version))
                local_cells(model, "servable", _servable_client(servable, queries))
                del servable
                gc.collect()
        for model in args.models:
            got = {mode: answers[(model, mode)] for mode in args.modes}
            reference = got[args.modes[0]]
            checks[model] = {mode: sum(a == b for a, b in zip(ids, reference))
                             for mode, ids in got.items()}
    wall = time.perf_counter() - started

    print(f"\n{NOTE.format(cpus=cpus)}")
    print(f"model version {version}, signature {SIGNATURE!r}, k={args.top_k}, "
          f"{len(queries)} queries in rotation, batch 1; TF threads "
          f"{args.tf_threads or 'default'}; closed loop, {args.warmup:g}s warm-up + "
          f"{args.duration:g}s measured per cell")
    print("(srv cpu / cli cpu: CPU seconds per wall second of the server / client process)")
    _header()
    for r in results:
        _print_row(r["model"], r["mode"], r)
    for model, agree in checks.items():
        print(f"{model}: top-{args.top_k} ids identical to {args.modes[0]} for "
              + ", ".join(f"{mode} {n}/{CHECK_QUERIES}" for mode, n in agree.items()))
    errors = sum(r["errors"] for r in results)
    for r in results:
        for message in r["error_samples"]:
            print(f"error ({r['model']} {r['mode']} x{r['concurrency']}): {message}")
    print(f"setup {setup_s:.0f}s, wall time {wall:.0f}s, errors {errors}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "model_server", "note": NOTE.format(cpus=cpus),
        "command": [sys.executable, *sys.argv], "server_command": command,
        "signature": SIGNATURE, "k": args.top_k, "model_version": version,
        "queries": len(queries), "batch": 1, "warmup_s": args.warmup,
        "duration_s": args.duration, "concurrency": concurrency, "modes": args.modes,
        "tf_threads": args.tf_threads or "default", "cpus": cpus,
        "machine": platform.machine(),
        "platform": {"users": synthetic.users, "items": synthetic.items,
                     "days": synthetic.days, "seed": synthetic.seed,
                     "end_date": synthetic.end_date.isoformat()},
        "model_config": cfg.to_dict(), "ids_identical_of_first_queries": checks,
        "check_queries": CHECK_QUERIES, "setup_seconds": round(setup_s, 1),
        "wall_seconds": round(wall, 1), "server_flags": args.server_flags, "errors": errors,
        "results": results}, indent=2))
    print(f"wrote {args.out}")
    _plot(results, args.out.with_suffix(".png"), cpus)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
