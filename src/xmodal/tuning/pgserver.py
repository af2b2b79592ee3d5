"""A throw-away PostgreSQL server for trying a shared study on one machine (and for the tests and
``benchmarks/tune_workers.py``): ``initdb`` into a temporary folder, started and stopped here, run as
an unprivileged user (``postgres`` when called as root, which the server refuses to run as).

>>> with temporary_postgres() as url:                                   # doctest: +SKIP
...     tune(X, y, storage=url, study_name="demo", n_trials=20)

On a cluster, use a real server instead: ``createdb xmodal`` once, then start
``xmodal tune DATA --storage postgresql://USER@HOST/xmodal --study NAME`` on every machine.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from xmodal.errors import XmodalError

__all__ = ["find_pg_bin", "temporary_postgres"]


def find_pg_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (``initdb``, ``pg_ctl``), or ``None`` when not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def temporary_postgres(user: str = "postgres") -> Iterator[str]:
    """Start a server on a free local port; yield its URL ``postgresql://xmodal@127.0.0.1:PORT/postgres``.

    Args:
        user: the system user that runs the server when this process is root.

    Raises:
        XmodalError: PostgreSQL is not installed, or the server did not start (with its log's tail).
    """
    bindir = find_pg_bin()
    if bindir is None:
        raise XmodalError("PostgreSQL's server programs (initdb, pg_ctl) are not installed; on Debian/Ubuntu: "
                          "apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="xmodal-pg-"))
    run_as = None
    if os.geteuid() == 0:
        run_as = user
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    data, log = folder / "data", folder / "server.log"

    def pg(*args: str) -> None:
        done = subprocess.run([str(bindir / args[0]), *args[1:]], user=run_as, capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            tail = log.read_text()[-600:] if log.exists() else ""
            raise XmodalError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()[-600:]} {tail}")

    try:
        pg("initdb", "-D", str(data), "-U", "xmodal", "--auth=trust", "--no-sync")
        pg("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-o",
           f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        try:
            yield f"postgresql://xmodal@127.0.0.1:{port}/postgres"
        finally:
            pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
