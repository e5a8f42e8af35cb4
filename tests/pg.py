"""A real PostgreSQL server for the store tests, started on loopback for the test session.

Uses the Debian ``postgresql`` package's binaries (``/usr/lib/postgresql/*/bin``): ``initdb`` into a
temporary folder, ``pg_ctl start`` on 127.0.0.1 at a free port, trust authentication. PostgreSQL
refuses to run as root, so as root (CI) the server runs as the ``postgres`` user the package
creates. Each test gets a database of its own. Tests are skipped, saying why, only when the
binaries are not installed.

Load the fixtures with ``pytest_plugins = ["tests.pg"]``; ``store_url`` runs a test on SQLite and
on PostgreSQL. Module-scoped fixtures make their own databases with ``pg_server.create_database()``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "postgres"
DB_USER = "xfv"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PgServer:
    """A running server: where it listens and how to run its tools as its owner."""

    bin: Path
    data: Path
    port: int
    run_as: str | None

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / tool), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; returns its name."""
        name = f"xfv_{uuid.uuid4().hex[:12]}"
        self.run("createdb", *self._client_options(), name)
        return name

    def drop_database(self, name: str) -> None:
        self.run("dropdb", *self._client_options(), "--force", name)

    def _client_options(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER]


def _start(bin_dir: Path) -> PgServer:
    run_as = SERVER_USER if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="xfv-pg-"))
    if run_as:
        user = pwd.getpwnam(run_as)
        os.chown(folder, user.pw_uid, user.pw_gid)
    server = PgServer(bin_dir, folder / "data", _free_port(), run_as)
    # The C locale sorts text by code point, like Python, whatever the machine's locale.
    initdb = ("-D", str(server.data), "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync")
    server.run("initdb", *initdb)
    options = f"-h 127.0.0.1 -p {server.port} -k {folder} -F"
    server.run("pg_ctl", "-D", str(server.data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the whole test session."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql): no /usr/lib/postgresql/*/bin/initdb")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root, PostgreSQL needs the {SERVER_USER!r} user the Debian package creates")
    try:
        server = _start(bin_dir)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"could not start PostgreSQL: {exc.stderr or exc.stdout}")
    yield server
    server.run("pg_ctl", "-D", str(server.data), "-m", "immediate", "-w", "stop")
    shutil.rmtree(server.data.parent, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store on each backend: an SQLite file, and a database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return str(request.getfixturevalue("pg_url"))
