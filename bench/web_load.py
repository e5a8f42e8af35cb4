"""Load on the web platform: Debian's ``wrk`` against ``xfv serve`` on loopback, varied URLs.

Usage: ``python bench/web_load.py [--json] [--store URL | --copies N] [--duration 30] [--workers N] [--lfw DIR]``

The server is ``xfv serve --workers N`` (default one per core) in a child process on 127.0.0.1.
Its store is either ``--store URL`` (e.g. one filled by ``xfv ingest`` + ``xfv compute`` on LFW) or,
by default, a **synthetic fill** built in a temporary folder: LFW's real protocol (6,000 pairs,
the real image files) with synthetic image-quality scores and synthetic distances drawn like
dlib's on LFW (genuine ~N(0.045, 0.02), impostor ~N(0.18, 0.035)), scored by the store's own
scoring step. ``--copies N`` stores N copies of LFW as datasets lfw, lfw-2, ...

The load generator is ``wrk`` (``apt-get install wrk``; a C program, so the client costs little
CPU), one thread, with a Lua script cycling through ``--urls`` (3,000) distinct generated URLs
per kind (random page, sort column and order, filters and page size). One server runs, in order:

- ``explorer_first`` and ``api_first`` at 50 connections, and ``explorer10_first`` at 10
  connections (on a second set of explorer URLs): one pass over the URLs, each asked once (wrk is
  stopped when all are answered, or after ``--warmup`` seconds), so every answer is one the server
  never rendered before: the cost of a new URL (the server processes keep an answer from the second
  time they render its URL while the store is unchanged, ``XFV_ANSWER_CACHE_MB``);
- ``explorer`` at 50 connections and ``explorer10`` at 10 connections (``/explorer`` pages), and
  ``api`` at 50 connections (``/api/pairs`` with the same parameters, ``/api/pairs/{id}`` and the
  viewer's ``/api/pairs/{id}/neighbours``), ``--duration`` seconds each: the same URLs again
  (repeated URLs; a URL first answered by another server process is new to this one);
- ``explorer_during_job``: ``explorer`` again while this process writes a web job's progress
  into the store every ``PROGRESS_SECONDS`` (as a running X-Map job does): each write moves the
  store's change token but not what the explorer reads, so the kept answers should stay valid
  (``during_job_ratio``: its requests/s over ``explorer``'s, measured side by side in one run).

It reports requests/s, p50/p99 latency, errors (connection errors, timeouts and non-2xx answers)
and the server's CPU per request (all its processes, from ``/proc``), with the machine's load
average; ``--json``: ``explorer_rps``, ``explorer_p99_ms``, ``explorer10_p99_ms``, ``api_p99_ms``,
``cpu_ms_per_request`` (explorer at 50), ``explorer_first_rps``, ``explorer_first_p99_ms``,
``explorer10_first_p99_ms``, ``explorer_first_cpu_ms_per_request``, ``errors``, ...

Where the store has results of several models, the URLs also compare them: a ``models`` list,
their ``agreement``, another table ``model`` and a ``sort_model`` for result columns.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
from sqlalchemy import delete, insert, select

from xfv.web.jobs import PROGRESS_SECONDS

DEFAULT_LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"


# --- the store ----------------------------------------------------------------------------------


def synthetic_store(url: str, lfw: Path, copies: int, seed: int = 0) -> int:
    """Fill the store at ``url`` with ``copies`` copies of LFW and synthetic dlib-like results;
    returns the number of pair results."""
    from xfv.datasets import read_protocol
    from xfv.models import get_model
    from xfv.pipeline.compute import score_dataset
    from xfv.store import open_store
    from xfv.store.catalog import register_model
    from xfv.store.models import Dataset, Identity, Image, Pair
    from xfv.store.results import add_distances

    store = open_store(url)
    protocol = read_protocol("lfw", lfw)
    rng = np.random.default_rng(seed)
    paths = protocol.unique_images()
    names = {pair.image1: pair.identity1 for pair in protocol.pairs} | {
        pair.image2: pair.identity2 for pair in protocol.pairs
    }
    with store.transaction() as session:
        model = register_model(session, get_model("dlib").spec)
        for copy in range(copies):
            name = "lfw" if copy == 0 else f"lfw-{copy + 1}"
            dataset = Dataset(
                name=name,
                protocol="lfw",
                root=str(lfw.resolve()),
                input_mode="lfw-funneled",
                image_count=len(paths),
                pair_count=len(protocol.pairs),
            )
            session.add(dataset)
            session.flush()
            people = sorted(set(names.values()))
            session.execute(insert(Identity), [{"dataset_id": dataset.id, "name": person} for person in people])
            person_ids = {
                n: i
                for n, i in session.execute(select(Identity.name, Identity.id).where(Identity.dataset_id == dataset.id))
            }
            session.execute(
                insert(Image),
                [
                    {
                        "dataset_id": dataset.id,
                        "identity_id": person_ids[names[path]],
                        "path": path.relative_to(lfw).as_posix(),
                        "width": 250,
                        "height": 250,
                        "file_size": 0,
                        "content_hash": f"{copy:08x}{index:056x}",
                        "quality": float(rng.beta(5, 2)),
                    }
                    for index, path in enumerate(paths)
                ],
            )
            image_ids = {
                p: i for p, i in session.execute(select(Image.path, Image.id).where(Image.dataset_id == dataset.id))
            }
            session.execute(
                insert(Pair),
                [
                    {
                        "dataset_id": dataset.id,
                        "position": position,
                        "fold": pair.fold,
                        "same": pair.same,
                        "image1_id": image_ids[pair.image1.relative_to(lfw).as_posix()],
                        "image2_id": image_ids[pair.image2.relative_to(lfw).as_posix()],
                    }
                    for position, pair in enumerate(protocol.pairs)
                ],
            )
            pair_ids = list(
                session.scalars(select(Pair.id).where(Pair.dataset_id == dataset.id).order_by(Pair.position))
            )
            same = protocol.same
            distances = np.where(same, rng.normal(0.045, 0.02, len(same)), rng.normal(0.18, 0.035, len(same)))
            add_distances(session, dataset, model, pair_ids, np.clip(distances, 0.0, 2.0))
            score_dataset(session, dataset, model, cscore_bins=400)
    store.close()
    return copies * len(protocol.pairs)


def store_size(url: str) -> dict[str, Any]:
    """Datasets, pairs and pair results of a store."""
    from sqlalchemy import func

    from xfv.store import open_store
    from xfv.store.models import Dataset, Model, Pair, PairResult

    store = open_store(url)
    with store.sessions() as session:
        size = {
            "datasets": list(session.scalars(select(Dataset.name).order_by(Dataset.name))),
            "pairs": session.scalar(select(func.count()).select_from(Pair)),
            "pair_results": session.scalar(select(func.count()).select_from(PairResult)),
            "pair_ids": list(session.scalars(select(Pair.id))),
            "models": list(
                session.scalars(
                    select(Model.name).where(Model.id.in_(select(PairResult.model_id))).order_by(Model.name)
                )
            ),
        }
    store.close()
    return size


# --- the server ---------------------------------------------------------------------------------


def _process_tree(root: int) -> list[int]:
    """``root`` and every process below it (the uvicorn workers), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            parent = int(rest.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(pid))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU time so far of a process and its children (Linux ``/proc``)."""
    total = 0.0
    for pid in _process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def find_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(url: str, home: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """``xfv serve --host 127.0.0.1 --port PORT --workers N`` on the store, once it answers."""
    env = {**os.environ, "XFV_DATABASE_URL": url, "XFV_HOME": str(home)}
    command = ["-m", "xfv.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen([sys.executable, *command], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"xfv serve exited with status {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/stats", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("xfv serve did not answer within 90 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=30)


# --- the load -----------------------------------------------------------------------------------

SORTS = ["position", "identity1", "identity2", "dataset", "fold", "label", "quality1", "quality2", "distance",
         "threshold", "prediction", "correct", "cscore"]  # fmt: skip
RESULT_SORTS = {"distance", "threshold", "prediction", "correct", "cscore"}
PAGE_SIZES = [25, 50, 100, 200]


def explorer_params(rng: random.Random, datasets: list[str], pairs: int, models: list[str]) -> dict[str, str]:
    """A random explorer state: filters, sort, order, page size and page, as a user would click
    them; with several ``models``, also which are compared, their agreement and the sorted model."""
    params: dict[str, str] = {"sort": rng.choice(SORTS), "order": rng.choice(["asc", "desc"])}
    if len(models) > 1:
        compared = models
        if rng.random() < 0.3:
            compared = rng.sample(models, rng.randint(2, len(models)))
            params["models"] = ",".join(compared)
        if rng.random() < 0.3:
            params["model"] = rng.choice(compared)
        if rng.random() < 0.2:
            params["agreement"] = rng.choice(["agree", "disagree"])
        if params["sort"] in RESULT_SORTS and rng.random() < 0.5:
            params["sort_model"] = rng.choice(compared)
    per_page = rng.choice(PAGE_SIZES)
    if per_page != 50:
        params["per_page"] = str(per_page)
    if len(datasets) > 1 and rng.random() < 0.5:
        params["dataset"] = rng.choice(datasets)
    if rng.random() < 0.3:
        params["outcome"] = rng.choice(["correct", "wrong"])
    if rng.random() < 0.2:
        params["label"] = rng.choice(["same", "different"])
    if rng.random() < 0.15:
        params["fold"] = str(rng.randint(0, 9))
    if rng.random() < 0.2:
        params["cscore_max"] = f"{rng.uniform(0.6, 1.0):.2f}"
    if rng.random() < 0.1:
        params["quality_min"] = f"{rng.uniform(0.2, 0.8):.2f}"
    if rng.random() < 0.1:
        params["identity"] = rng.choice(["bush", "ann", "li", "powell", "ma"])
    last = max(1, pairs // per_page)
    params["page"] = str(rng.choice([1, 1, 2, 3, rng.randint(1, last)]))
    return params


def urls(kind: str, size: dict[str, Any], count: int, seed: int, tag: str = "") -> list[str]:
    """``count`` distinct varied paths of one kind of request (another ``tag``: other paths)."""
    rng = random.Random(f"{seed}-{kind}{tag}")
    paths: dict[str, None] = {}
    while len(paths) < count:
        paths.update(dict.fromkeys(_paths(kind, size, rng, count - len(paths))))
    return list(paths)


def _paths(kind: str, size: dict[str, Any], rng: random.Random, count: int) -> list[str]:
    paths = []
    for _ in range(count):
        params = explorer_params(rng, size["datasets"], size["pairs"] // max(1, len(size["datasets"])), size["models"])
        if kind == "explorer":
            paths.append(f"/explorer?{urlencode(params)}")
            continue
        choice, pair = rng.random(), rng.choice(size["pair_ids"])
        if choice < 0.5:
            paths.append(f"/api/pairs?{urlencode(params)}")
        elif choice < 0.8:
            paths.append(f"/api/pairs/{pair}")
        else:
            paths.append(f"/api/pairs/{pair}/neighbours?{urlencode(params)}")
    return paths


#: Cycles through the paths file (its name in the environment); with XFV_BENCH_DONE set, writes
#: that file once every path has been answered (the bench then stops wrk with SIGINT, so its
#: summary covers the time until then). Prints one JSON line at the end.
LUA = """
local paths, index, answered = {}, 0, 0
local marker = os.getenv("XFV_BENCH_DONE")
for line in io.lines(os.getenv("XFV_BENCH_PATHS")) do paths[#paths + 1] = line end
request = function()
  index = index % #paths + 1
  return wrk.format("GET", paths[index])
end
if marker ~= "" then
  response = function(status, headers, body)
    answered = answered + 1
    if answered == #paths then io.open(marker, "w"):close() end
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "max_ms": %f, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def run_wrk(
    base: str, paths: list[str], connections: int, seconds: int, folder: Path, pid: int, once: bool = False
) -> dict[str, Any]:
    """One ``wrk`` run (one thread) cycling through ``paths`` for ``seconds`` (``once``: until each
    path is answered once, at most ``seconds``); the server's CPU per request."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    script, listing = folder / "cycle.lua", folder / f"paths-{connections}-{len(paths)}.txt"
    script.write_text(LUA)
    listing.write_text("\n".join(paths) + "\n")
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base]
    marker = folder / "answered-all"
    marker.unlink(missing_ok=True)
    env = {**os.environ, "XFV_BENCH_PATHS": str(listing), "XFV_BENCH_DONE": str(marker) if once else ""}
    cpu_before = cpu_seconds(pid)
    load = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while once and load.poll() is None and not marker.exists():
        time.sleep(0.02)
    if load.poll() is None and once:
        load.send_signal(signal.SIGINT)  # wrk stops and reports the time until now
    output, errors = load.communicate()
    cpu = cpu_seconds(pid) - cpu_before
    if load.returncode != 0:
        raise SystemExit(f"wrk failed ({load.returncode}): {errors.strip()}")
    found = json.loads(output.strip().splitlines()[-1])
    errors = sum(found[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "connections": connections,
        "requests": found["requests"],
        "rps": round(found["requests"] / found["seconds"], 1),
        "p50_ms": round(found["p50_ms"], 1),
        "p99_ms": round(found["p99_ms"], 1),
        "max_ms": round(found["max_ms"], 1),
        "errors": errors,
        "cpu_ms_per_request": round(1000 * cpu / max(found["requests"], 1), 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


class ProgressWrites:
    """While open, writes a web job's progress into the store every ``PROGRESS_SECONDS`` from a
    thread of this process, as a running X-Map job does; the job is deleted at the end."""

    JOB_ID = "web-load-progress"

    def __init__(self, url: str) -> None:
        self.url = url
        self.writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def __enter__(self) -> ProgressWrites:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _write(self) -> None:
        from xfv.store import open_store
        from xfv.store.models import WebJob
        from xfv.store.web_jobs import add_web_job, update_web_job

        store = open_store(self.url)
        try:
            with store.sessions() as session:
                add_web_job(session, self.JOB_ID, "xmaps", self.JOB_ID, 10**6, "/api/none", "bench")
                session.commit()
                while not self._stop.wait(PROGRESS_SECONDS):
                    self.writes += 1
                    update_web_job(session, self.JOB_ID, done=self.writes)
                    session.commit()
                session.execute(delete(WebJob).where(WebJob.id == self.JOB_ID))
                session.commit()
        finally:
            store.close()


def prepare_store(args: argparse.Namespace, home: Path) -> tuple[str, str]:
    """The store's URL and what it is: the one given (named without its password), or a synthetic
    fill under ``home``."""
    if args.store:
        from xfv.store.engine import describe_url, normalise_url

        return args.store, describe_url(normalise_url(args.store))
    if not (args.lfw / "pairs.txt").is_file():
        raise SystemExit(f"LFW not found at {args.lfw} (pass --lfw DIR or --store URL)")
    url, store = f"sqlite:///{home / 'load.sqlite'}", f"synthetic LFW fill x{args.copies}"
    os.environ["XFV_HOME"] = str(home)
    started = time.perf_counter()
    synthetic_store(url, args.lfw, args.copies, args.seed)
    if not args.json:
        print(f"built the {store} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return url, store


def measure(args: argparse.Namespace, url: str, home: Path, size: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The runs (see the module docstring) on one server: the first passes over the URLs (mostly
    uncached answers), then the measured runs."""
    explorer, api = urls("explorer", size, args.urls, args.seed), urls("api", size, args.urls, args.seed)
    asked = set(explorer)
    fresh = [path for path in urls("explorer", size, 2 * args.urls, args.seed, "-10") if path not in asked]
    plan = [
        ("explorer_first", explorer, 50, args.warmup, True),
        ("explorer10_first", fresh[: args.urls], 10, args.warmup, True),
        ("api_first", api, 50, args.warmup, True),
        ("explorer", explorer, 50, args.duration, False),
        ("explorer10", explorer, 10, args.duration, False),
        ("api", api, 50, args.duration, False),
        ("explorer_during_job", explorer, 50, args.duration, False),
    ]
    runs: dict[str, dict[str, Any]] = {}
    port = find_port()
    server = start_server(url, home, port, args.workers)
    try:
        for name, paths, connections, seconds, once in plan:
            base = f"http://127.0.0.1:{port}"
            if name == "explorer_during_job":
                with ProgressWrites(url) as writes:
                    runs[name] = run_wrk(base, paths, connections, seconds, home, server.pid, once)
                runs[name]["progress_writes"] = writes.writes
            else:
                runs[name] = run_wrk(base, paths, connections, seconds, home, server.pid, once)
            if not args.json:
                print(f"{name}: {runs[name]}", file=sys.stderr)
    finally:
        stop_server(server)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--store", help="database URL of a store with results (default: a synthetic LFW fill)")
    parser.add_argument("--copies", type=int, default=1, help="synthetic fill: copies of LFW's 6,000 pairs (default 1)")
    parser.add_argument("--duration", type=int, default=30, help="seconds per measured run (default 30)")
    parser.add_argument("--warmup", type=int, default=300, help="most seconds of each first pass (default 300)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes (default: cores)")
    parser.add_argument("--urls", type=int, default=3000, help="distinct URLs each run cycles through (default 3000)")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help=f"LFW folder (default {DEFAULT_LFW})")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xfv-web-load-") as folder:
        home = Path(folder)
        url, store = prepare_store(args, home)
        size = store_size(url)
        load_before = round(os.getloadavg()[0], 2)
        runs = measure(args, url, home, size)
    summary: dict[str, Any] = {
        "store": store,
        "pair_results": size["pair_results"],
        "models": size["models"],
        "workers": args.workers,
        "seconds_per_run": args.duration,
        "distinct_urls": args.urls,
        "explorer_rps": runs["explorer"]["rps"],
        "explorer_p50_ms": runs["explorer"]["p50_ms"],
        "explorer_p99_ms": runs["explorer"]["p99_ms"],
        "explorer10_p99_ms": runs["explorer10"]["p99_ms"],
        "api_rps": runs["api"]["rps"],
        "api_p99_ms": runs["api"]["p99_ms"],
        "cpu_ms_per_request": runs["explorer"]["cpu_ms_per_request"],
        "api_cpu_ms_per_request": runs["api"]["cpu_ms_per_request"],
        "explorer_first_rps": runs["explorer_first"]["rps"],
        "explorer_first_p50_ms": runs["explorer_first"]["p50_ms"],
        "explorer_first_p99_ms": runs["explorer_first"]["p99_ms"],
        "explorer10_first_p99_ms": runs["explorer10_first"]["p99_ms"],
        "explorer10_first_cpu_ms_per_request": runs["explorer10_first"]["cpu_ms_per_request"],
        "explorer_first_cpu_ms_per_request": runs["explorer_first"]["cpu_ms_per_request"],
        "api_first_cpu_ms_per_request": runs["api_first"]["cpu_ms_per_request"],
        "explorer_during_job_rps": runs["explorer_during_job"]["rps"],
        "explorer_during_job_p99_ms": runs["explorer_during_job"]["p99_ms"],
        "during_job_ratio": round(runs["explorer_during_job"]["rps"] / max(runs["explorer"]["rps"], 1e-9), 3),
        "errors": sum(run["errors"] for run in runs.values()),
        "answer_cache_mb": float(os.environ.get("XFV_ANSWER_CACHE_MB", 64)),
        "cpus": os.cpu_count(),
        "load_average_1min_before": load_before,
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "runs": runs,
    }
    print(json.dumps(summary, indent=2))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
