"""A throwaway PostgreSQL 15 cluster for the recorder's tests: a real server, Unix socket only.

::

    with PgCluster.start() as cluster:          # initdb into a temp folder, pg_ctl start
        url = cluster.new_database()            # postgresql+psycopg://gsmon@/t1?host=<folder>
    # stopped (pg_ctl stop -m immediate) and removed

The server listens on no TCP port at all (``listen_addresses = ''``), only on a
socket in its own folder, and trusts local connections (the folder is
private). PostgreSQL refuses to run as root: when the tests run as root the
binaries run as the ``postgres`` system user (Debian's package creates it)
through ``runuser``, and the folder is given to that user. Durability is off
(``fsync = off``): a test cluster does not need to survive a power cut.

Where it cannot start (no binaries, no non-root user), :func:`unavailable`
says why; under ``CI=true`` the fixture then fails the test instead of
skipping it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

PG_BIN: Final = Path(os.environ.get("GSMON_PG_BIN", "/usr/lib/postgresql/15/bin"))
_RUN_AS: Final = "postgres"


def unavailable() -> str | None:
    """Why no cluster can be started here, or None."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            return f"{PG_BIN / tool} is missing: apt-get install postgresql-15"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_RUN_AS)
        except KeyError:
            return f"running as root and there is no {_RUN_AS!r} user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


class PgCluster:
    """One running cluster (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self._names = itertools.count(1)

    @staticmethod
    def _argv(argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", _RUN_AS, "--", *argv]
        return argv

    def _run(self, *argv: str, timeout_s: float = 60.0) -> None:
        result = subprocess.run(
            self._argv(list(argv)), capture_output=True, text=True, timeout=timeout_s, check=False, cwd=self.folder
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}\n{log}")

    @classmethod
    def start(cls) -> PgCluster:
        folder = Path(tempfile.mkdtemp(prefix="gsmon-pg-", dir="/tmp"))  # short: a socket path has ~100 bytes
        cluster = cls(folder)
        if os.geteuid() == 0:
            user = pwd.getpwnam(_RUN_AS)
            os.chown(folder, user.pw_uid, user.pw_gid)
        folder.chmod(0o700)
        try:
            cluster._run(
                str(PG_BIN / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                "gsmon",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
            options = (
                f"-k {folder} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            cluster._run(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(cluster.data),
                "-o",
                options,
                "-l",
                str(cluster.log),
                "-w",
                "-t",
                "60",
                "start",
            )
        except BaseException:
            cluster.remove()
            raise
        return cluster

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://gsmon@/{database}?host={self.folder}"

    def new_database(self) -> str:
        """A fresh, empty database's URL (one per test, so that tests do not see each other's rows)."""
        import psycopg

        name = f"t{next(self._names)}"
        with psycopg.connect(host=str(self.folder), user="gsmon", dbname="postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            with contextlib.suppress(RuntimeError):  # already stopped: removing the folder is what is left
                self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
