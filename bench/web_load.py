"""Load on the web platform: 50 concurrent HTTP clients against ``xfv serve`` on loopback.

Usage: ``python bench/web_load.py [--json] [--store URL | --copies N] [--clients 50] [--requests 3000] [--lfw DIR]``

The server is ``xfv serve`` (``python -m xfv.cli serve``) in a child process on 127.0.0.1. Its
store is either ``--store URL`` (e.g. one filled by ``xfv ingest`` + ``xfv compute`` on LFW) or,
by default, a **synthetic fill** built in a temporary folder: LFW's real protocol (6,000 pairs,
13,233 images, 5,749 people, the real image files) with synthetic image-quality scores and
synthetic distances drawn like dlib's on LFW (genuine ~N(0.045, 0.02), impostor ~N(0.18, 0.035)),
scored by the store's own scoring step (10-fold thresholds and out-of-fold C-Scores).
``--copies N`` stores N copies of LFW as datasets lfw, lfw-2, ... (6,000 x N pair results).

The load generator (asyncio + httpx, one process) runs ``--clients`` workers that each send
requests back to back until ``--requests`` have been sent: explorer pages (``/explorer`` with
random filters, sorts and pages) and API calls (``/api/pairs`` the same way, ``/api/pairs/{id}``
and the viewer's ``/api/pairs/{id}/neighbours``), half and half. Latency is measured per
request, body included. Any status >= 400 or failed request is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import insert, select

DEFAULT_LFW = Path(__file__).resolve().parents[2] / "shared/data/lfw"


# --- the store ----------------------------------------------------------------------------------


def synthetic_store(url: str, lfw: Path, copies: int, seed: int = 0) -> int:
    """Fill the store at ``url`` with ``copies`` copies of LFW and synthetic dlib-like results;
    returns the number of pair results."""
    from xfv.datasets import read_protocol
    from xfv.models import get_model
    from xfv.pipeline.compute import score_dataset
    from xfv.store import open_store
    from xfv.store.models import Dataset, Identity, Image, Pair
    from xfv.store.repository import add_distances, register_model

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
    from xfv.store.models import Dataset, Pair, PairResult

    store = open_store(url)
    with store.sessions() as session:
        size = {
            "datasets": list(session.scalars(select(Dataset.name).order_by(Dataset.name))),
            "pairs": session.scalar(select(func.count()).select_from(Pair)),
            "pair_results": session.scalar(select(func.count()).select_from(PairResult)),
            "pair_ids": list(session.scalars(select(Pair.id))),
        }
    store.close()
    return size


# --- the server ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def find_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(url: str, home: Path, port: int) -> subprocess.Popen[bytes]:
    """``xfv serve --host 127.0.0.1 --port PORT`` on the store, once it answers."""
    env = {**os.environ, "XFV_DATABASE_URL": url, "XFV_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "xfv.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,  # its banner; errors still reach stderr
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"xfv serve exited with status {server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/stats", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("xfv serve did not answer within 60 s")


# --- the load -----------------------------------------------------------------------------------


def explorer_params(rng: random.Random, datasets: list[str]) -> dict[str, str]:
    """A random explorer state: filters, sort and page as a user would click them."""
    params: dict[str, str] = {"sort": rng.choice(["position", "cscore", "distance", "quality1", "identity1", "fold"])}
    params["order"] = rng.choice(["asc", "desc"])
    if rng.random() < 0.5:
        params["dataset"] = rng.choice(datasets)
    if rng.random() < 0.3:
        params["outcome"] = rng.choice(["correct", "wrong"])
    if rng.random() < 0.2:
        params["label"] = rng.choice(["same", "different"])
    if rng.random() < 0.2:
        params["cscore_max"] = f"{rng.uniform(0.6, 1.0):.2f}"
    if rng.random() < 0.1:
        params["quality_min"] = f"{rng.uniform(0.2, 0.8):.2f}"
    if rng.random() < 0.1:
        params["identity"] = rng.choice(["bush", "ann", "li", "powell", "ma"])
    params["page"] = str(rng.choice([1, 1, 1, 2, 3, rng.randint(1, 40)]))
    return params


@dataclass
class Results:
    """Latencies (ms) per kind of request, and the errors seen."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"explorer": [], "api": []})
    errors: list[str] = field(default_factory=list)


async def one_request(client: httpx.AsyncClient, rng: random.Random, size: dict[str, Any], results: Results) -> None:
    """Send one request of a random kind and record its latency or error."""
    kind = "explorer" if rng.random() < 0.5 else "api"
    if kind == "explorer":
        path, params = "/explorer", explorer_params(rng, size["datasets"])
    else:
        choice = rng.random()
        if choice < 0.5:
            path, params = "/api/pairs", explorer_params(rng, size["datasets"])
        elif choice < 0.8:
            path, params = f"/api/pairs/{rng.choice(size['pair_ids'])}", {}
        else:
            path, params = (
                f"/api/pairs/{rng.choice(size['pair_ids'])}/neighbours",
                explorer_params(rng, size["datasets"]),
            )
    start = time.perf_counter()
    try:
        response = await client.get(path, params=params)
        if response.status_code >= 400:
            results.errors.append(f"{response.status_code} {path}?{httpx.QueryParams(params)}: {response.text[:200]}")
    except httpx.HTTPError as exc:
        results.errors.append(f"{type(exc).__name__} {path}: {exc}")
    results.latencies[kind].append((time.perf_counter() - start) * 1000)


async def load(base: str, size: dict[str, Any], clients: int, requests: int, seed: int) -> tuple[Results, float]:
    """``clients`` workers sending ``requests`` requests in all; returns results and wall time."""
    results = Results()
    remaining = requests
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def worker(index: int, client: httpx.AsyncClient) -> None:
        nonlocal remaining
        rng = random.Random(seed * 1000 + index)
        while remaining > 0:
            remaining -= 1
            await one_request(client, rng, size, results)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(i, client) for i in range(clients)))
        return results, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(
    results: Results, seconds: float, server_cpu: float, size: dict[str, Any], store: str, clients: int
) -> dict[str, Any]:
    """The numbers: latency percentiles per kind, throughput, errors, and the server's CPU cost
    per request (what the latencies would shrink to on an idle machine, one core per server)."""
    total = sum(len(v) for v in results.latencies.values())
    summary: dict[str, Any] = {
        "store": store,
        "datasets": len(size["datasets"]),
        "pair_results": size["pair_results"],
        "clients": clients,
        "requests": total,
        "seconds": round(seconds, 2),
        "requests_per_second": round(total / seconds, 1),
        "errors": len(results.errors),
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(total, 1), 2),
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    for kind, values in results.latencies.items():
        summary[f"{kind}_requests"] = len(values)
        for q in (50, 95, 99):
            summary[f"{kind}_p{q}_ms"] = round(percentile(values, q), 1)
    summary["error_samples"] = results.errors[:5]
    return summary


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--store", help="database URL of a store with results (default: a synthetic LFW fill)")
    parser.add_argument("--copies", type=int, default=1, help="synthetic fill: copies of LFW's 6,000 pairs (default 1)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=3000, help="requests in all (default 3000)")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help=f"LFW folder (default {DEFAULT_LFW})")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xfv-web-load-") as folder:
        home = Path(folder)
        url, store = prepare_store(args, home)
        size = store_size(url)
        port = find_port()
        server = start_server(url, home, port)
        try:
            cpu_before = cpu_seconds(server.pid)
            results, seconds = asyncio.run(
                load(f"http://127.0.0.1:{port}", size, args.clients, args.requests, args.seed)
            )
            server_cpu = cpu_seconds(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(timeout=30)
    summary = report(results, seconds, server_cpu, size, store, args.clients)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"store: {summary['store']}, {summary['pair_results']:,} pair results in {summary['datasets']} dataset(s)"
        )
        rate = summary["requests_per_second"]
        print(f"{summary['requests']} requests from {args.clients} clients in {summary['seconds']} s ({rate} req/s)")
        busy, cost = summary["load_average_1min"], summary["server_cpu_ms_per_request"]
        print(f"server CPU {cost} ms per request; machine: {summary['cpus']} CPUs, load average {busy} at the end")
        for kind in ("explorer", "api"):
            p50, p95, p99 = (summary[f"{kind}_p{q}_ms"] for q in (50, 95, 99))
            print(f"  {kind:<8} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   p99 {p99:8.1f} ms")
        print(f"errors: {summary['errors']}" + "".join(f"\n  {e}" for e in summary["error_samples"]))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
