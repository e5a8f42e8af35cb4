"""Where compute chunks run: in this process, in local worker processes, or as Ray tasks.

Every executor runs a picklable top-level function over a list of tasks and yields
``(task index, result)`` as results arrive, in any order. Only the calling process writes to the
database, so the database is the single place results land whatever runs the tasks, and an
SQLite store works with every executor. At most a few tasks per worker are in flight at once: a
killed run loses little work, and results never pile up in memory.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from xfv.config import SINGLE_CORE_WORKER_ENV, become_single_core_worker
from xfv.errors import XfvError

T = TypeVar("T")
R = TypeVar("R")
E = TypeVar("E", bound="Executor")

EXECUTORS = ("local", "ray")
#: Tasks in flight per worker: one running, one queued, so no worker waits for the next task.
IN_FLIGHT_PER_WORKER = 2
#: How long to wait for a Ray cluster's address to accept a connection.
PROBE_TIMEOUT_S = 10


def worker_name() -> str:
    """Host and process id of whoever runs a task (stored with each chunk)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Executor(ABC):
    """Runs tasks; use as a context manager so workers are shut down."""

    name: str
    workers: int

    @abstractmethod
    def map_unordered(self, function: Callable[[T], R], tasks: Sequence[T]) -> Iterator[tuple[int, R]]:
        """``(index, function(tasks[index]))`` for every task, as each finishes."""

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)
        """Release workers (nothing to do for the in-process executor)."""

    def __enter__(self: E) -> E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """One worker: tasks run in this process. More: a pool of spawned worker processes, each
    loading the model once (``get_model`` caches it per process)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise XfvError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def map_unordered(self, function: Callable[[T], R], tasks: Sequence[T]) -> Iterator[tuple[int, R]]:
        if self.workers == 1:
            for index, task in enumerate(tasks):
                yield index, function(task)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=become_single_core_worker
            )
        pending: dict[Future[R], int] = {}
        queue = iter(enumerate(tasks))
        while True:
            for index, task in queue:
                pending[self._pool.submit(function, task)] = index
                if len(pending) >= self.workers * IN_FLIGHT_PER_WORKER:
                    break
            if not pending:
                return
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield pending.pop(future), future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Tasks run as Ray tasks (one CPU each) on the cluster at ``address``, or on a local cluster
    started for this run when ``address`` is None. ``workers`` bounds the tasks in flight
    (default: the cluster's CPUs)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise XfvError("the ray executor needs Ray: pip install 'xfv[ray]'") from None
        self._ray = ray
        self._started_here = not ray.is_initialized()
        if self._started_here:
            if address is not None:
                _probe(address)
            options: dict[str, Any] = {"address": address, "log_to_driver": False}
            if address is None:
                options.update(num_cpus=workers, include_dashboard=False)
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
                raise XfvError(f"cannot start or reach {where}: {exc}") from None
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, cluster_cpus)

    def map_unordered(self, function: Callable[[T], R], tasks: Sequence[T]) -> Iterator[tuple[int, R]]:
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=2, runtime_env={"env_vars": SINGLE_CORE_WORKER_ENV})(function)
        pending: dict[Any, int] = {}
        queue = iter(enumerate(tasks))
        while True:
            for index, task in queue:
                pending[remote.remote(task)] = index
                if len(pending) >= self.workers * IN_FLIGHT_PER_WORKER:
                    break
            if not pending:
                return
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                yield pending.pop(ref), self._result(ref)

    def _result(self, ref: Any) -> Any:
        """A task's result; a user error raised in a task is re-raised as itself, not wrapped."""
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, XfvError):
                raise exc.cause from None
            raise

    def close(self) -> None:
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()


def _probe(address: str) -> None:
    """Fail fast when a ``HOST:PORT`` (or ``ray://HOST:PORT``) cluster address does not answer:
    Ray itself keeps retrying for minutes. Other forms (``auto``) are left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise XfvError(f"cannot start or reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def make_executor(name: str, workers: int | None = None, ray_address: str | None = None) -> Executor:
    """The executor called ``name`` (``local`` or ``ray``)."""
    if name == "local":
        return LocalExecutor(workers or 1)
    if name == "ray":
        return RayExecutor(ray_address, workers)
    raise XfvError(f"unknown executor {name!r}: use one of {', '.join(EXECUTORS)}")
