"""A throwaway PostgreSQL 15 cluster for the tests: one per session, one database per test.

The server binaries refuse to run as root, so as root (CI, this machine) they run as the
`postgres` system user (`runuser -u postgres --`) in a temporary folder owned by it; as any
other user they run as that user. The cluster listens on a free port on 127.0.0.1 only, with
fsync off (a crash loses nothing a test needs) and room for many connections (races, load).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

PG_BIN_ENV = "OHLORA_TEST_POSTGRES_BIN"  # a folder holding initdb, pg_ctl, postgres, psql
DEFAULT_PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_SYSTEM_USER = "postgres"  # who runs the server when the tests run as root
SUPERUSER = "postgres"  # the cluster's superuser (trust authentication on 127.0.0.1)
HOST = "127.0.0.1"
MAX_CONNECTIONS = 300  # two racing processes' pools and a load bench fit
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
SQL_TIMEOUT_S = 60
START_ATTEMPTS = 3  # a free port can be taken between picking it and binding it
INSTALL_HINT = (
    "PostgreSQL 15 server binaries not found: apt install postgresql-15, "
    f"or set {PG_BIN_ENV} to the folder with initdb and pg_ctl"
)
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres", "psql")
EMPTY_TEMPLATE = "template0"  # a database with nothing of ours in it


class Backend(StrEnum):
    """The database servers the storage layer supports (the test parameter ids)."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


BACKENDS: tuple[Backend, ...] = tuple(Backend)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, or the cluster would not start."""


def find_bin_dir() -> Path | None:
    """The server binaries' folder: `$OHLORA_TEST_POSTGRES_BIN`, else Debian's PostgreSQL 15."""
    configured = os.environ.get(PG_BIN_ENV)
    folder = Path(configured) if configured else DEFAULT_PG_BIN
    if all((folder / name).is_file() for name in SERVER_BINARIES):
        return folder
    # psql may live elsewhere (a client package); the server binaries must be together
    if all((folder / name).is_file() for name in SERVER_BINARIES[:3]) and shutil.which("psql"):
        return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """One cluster: `start()`, `create_database()` per test, `stop()` (also at exit).

    `url(name)` and `create_database()` give `postgresql+asyncpg://` URLs for
    `storage.Database`; `psql(sql)` runs maintenance SQL as the superuser.
    """

    bin_dir: Path
    root: Path | None = None
    port: int = 0
    _as_postgres: list[str] = field(default_factory=list)
    _running: bool = False
    # Drops, and the next test's database copied ahead of time, run here, so a test's set-up
    # and teardown mostly do not wait for CREATE/DROP DATABASE (each takes about a second).
    _background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-spare")
    )
    _spares: dict[str, Future[str]] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "start() the server first"
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def _bin(self, name: str) -> str:
        path = self.bin_dir / name
        if path.is_file():
            return str(path)
        found = shutil.which(name)
        if found is None:
            raise PostgresUnavailable(INSTALL_HINT)
        return found

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as_postgres, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )

    def start(self) -> None:
        """initdb into a new temporary folder and start the server on a free port."""
        self.root = Path(tempfile.mkdtemp(prefix="ohlora-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(PG_SYSTEM_USER)
            except KeyError as exc:
                raise PostgresUnavailable(
                    f"running as root needs the {PG_SYSTEM_USER!r} system user ({INSTALL_HINT})"
                ) from exc
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as_postgres = ["runuser", "-u", PG_SYSTEM_USER, "--"]
        atexit.register(self.stop)  # a crashed session must not leave a server behind
        done = self._run(
            self._bin("initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            timeout=START_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip() or done.stdout}")
        log = ""
        for _ in range(START_ATTEMPTS):
            self.port = _free_port()
            options = " ".join(
                (
                    f"-c port={self.port}",
                    f"-c listen_addresses={HOST}",
                    f"-c unix_socket_directories={self.root}",
                    f"-c max_connections={MAX_CONNECTIONS}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                )
            )
            started = self._run(
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
                timeout=START_TIMEOUT_S + 10,
            )
            if started.returncode == 0:
                self._running = True
                return
            log = (self.root / "server.log").read_text(errors="replace")
        raise PostgresUnavailable(f"pg_ctl start failed:\n{log[-2000:]}")

    def stop(self) -> None:
        """Stop the server (immediately: nothing in it is kept) and remove its folder."""
        self._background.shutdown(wait=True, cancel_futures=True)
        self._spares.clear()
        if self._running:
            self._run(
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "immediate",
                "-w",
                "-t",
                str(STOP_TIMEOUT_S),
                "stop",
                timeout=STOP_TIMEOUT_S + 10,
            )
            self._running = False
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL as the superuser through psql (no event loop needed); returns its output."""
        done = subprocess.run(
            [
                self._bin("psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                dbname,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=SQL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({sql!r}): {done.stderr.strip()}")
        return done.stdout

    def _copy(self, name: str, template: str) -> str:
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def create_database(self, name: str | None = None, template: str = EMPTY_TEMPLATE) -> str:
        """A new database, a copy of `template` (default: empty); returns its URL. The
        template must have no open connection while it is copied.

        Without a `name`, the copy made ahead of time for this template is handed out and the
        next one is started in the background."""
        if name is not None:
            return self._copy(name, template)
        spare = self._spares.pop(template, None)
        url = spare.result() if spare is not None else self._copy(_new_name(), template)
        self._spares[template] = self._background.submit(self._copy, _new_name(), template)
        return url

    def drop_database(self, name: str, *, wait: bool = True) -> None:
        """Drop a database, ending whatever connections it still has; `wait=False` drops it
        in the background (a test's teardown: the next test needs none of its space)."""
        sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        if wait:
            self.psql(sql)
        else:
            self._background.submit(self.psql, sql)

    def prepared_template(
        self, name: str, prepare: Callable[[str], Coroutine[object, object, None]]
    ) -> str:
        """Create database `name` once and run `prepare(url)` on it in a loop of its own (say,
        the migrations), for `create_database(template=name)` to copy; returns `name`."""
        url = self.create_database(name)
        with ThreadPoolExecutor(max_workers=1) as pool:  # callable from inside a running loop
            pool.submit(asyncio.run, prepare(url)).result()
        return name


def serve_for_tests() -> Iterator[PostgresServer]:
    """A started cluster for a fixture (`yield from`), stopped after. Missing binaries skip the
    test on a developer's machine and fail it under CI=true, where PostgreSQL must be tested."""
    import pytest

    bin_dir = find_bin_dir()
    try:
        if bin_dir is None:
            raise PostgresUnavailable(INSTALL_HINT)
        server = PostgresServer(bin_dir)
        server.start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs PostgreSQL: {exc}", pytrace=False)
        pytest.skip(str(exc).splitlines()[0])
    try:
        yield server
    finally:
        server.stop()


def _new_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


def database_name(url: str) -> str:
    """The database part of a URL made by `PostgresServer.url`."""
    return url.rsplit("/", 1)[1]
