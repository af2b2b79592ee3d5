"""Where a tuning study lives: a journal file in the run folder (default), or PostgreSQL for many machines.

* ``None`` / a path: Optuna's :class:`~optuna.storages.JournalStorage` on a file
  (``RUN/study.journal``). No server; a killed ``xmodal tune`` rerun with the same ``--out``
  continues the study. Several processes on one machine (or on a shared file system with working
  ``flock``) may share the file.
* ``postgresql://user[:password]@host[:port]/database``: Optuna's :class:`~optuna.storages.RDBStorage`
  through SQLAlchemy and psycopg 3, with a heartbeat, so that a trial whose worker died on any
  machine is marked failed after the grace period. ``sqlite:///file.db`` works as well (one machine).

A worker that is killed leaves its trial RUNNING. Besides the heartbeat (RDB storages), every
worker records ``worker = host:pid`` on its trials, and :func:`fail_orphaned_trials` marks the
RUNNING trials of dead processes on this host FAILED (the only way for journal files, which have no
heartbeat). Workers call it before every trial and at the end.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from xmodal.errors import XmodalError

__all__ = ["open_storage", "worker_id", "fail_orphaned_trials", "HEARTBEAT_S", "GRACE_S"]

#: RDB storages: a running trial's worker writes a heartbeat this often (seconds)
HEARTBEAT_S = 20
#: … and a trial whose heartbeat is older than this is failed by the next worker that starts a trial
GRACE_S = 60


def worker_id() -> str:
    """``host:pid`` of this process, recorded on every trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def open_storage(storage: str | Path | None, folder: Path) -> tuple[Any, str]:
    """The Optuna storage for ``storage`` (see the module docstring) and a description without passwords.

    Raises:
        XmodalError: an unsupported URL, or a database that cannot be reached (with the server's message).
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if storage is None or "://" not in str(storage):
        path = Path(storage) if storage is not None else folder / "study.journal"
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path))), f"journal file {path}"
    url = str(storage)
    scheme = url.split("://", 1)[0]
    if scheme in ("postgresql", "postgres"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # SQLAlchemy's default driver would be psycopg2
    elif not (scheme.startswith("postgresql+") or scheme.startswith("sqlite") or scheme.startswith("mysql")):
        raise XmodalError(f"unsupported storage {scheme}://…; use a file path (journal), postgresql://… or sqlite:///…")
    shown = _without_password(url)
    kwargs: dict[str, Any] = {"engine_kwargs": {"pool_pre_ping": True}}
    if not scheme.startswith("sqlite"):
        kwargs.update(heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    try:
        return optuna.storages.RDBStorage(url, **kwargs), shown
    except ImportError as exc:
        raise XmodalError(f"the storage {shown} needs a database driver ({exc}); pip install 'psycopg[binary]'") \
            from exc
    except Exception as exc:  # SQLAlchemy's OperationalError etc.: the server's own words
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise XmodalError(f"cannot open the study storage {shown}: {first}") from exc


def _without_password(url: str) -> str:
    head, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    cred, at, host = rest.rpartition("@")
    user = cred.split(":", 1)[0]
    return f"{head}{sep}{user}{':***' if ':' in cred else ''}{at}{host}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def fail_orphaned_trials(study: Any) -> list[int]:
    """Mark FAILED the RUNNING trials of ``study`` whose worker was a process of this host that is gone.

    Returns:
        The numbers of the trials marked failed.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        h, _, pid = worker.rpartition(":")
        if h != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "failed_because", f"worker {worker} is gone")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another worker failed it first
        failed.append(t.number)
    return failed
