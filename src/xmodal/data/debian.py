"""Where the data files of Debian packages are found: the system, or a user's unpacked copy.

Some built-in datasets are read from files that Debian packages ship (``dataset-fashion-mnist``,
``r-cran-mlbench``, ``weka``). A user with root installs them with ``apt-get install``; everyone else
runs ``scripts/fetch_debian_data.sh``, which downloads the same packages with ``apt-get download``
and unpacks the needed files with ``dpkg-deb -x`` under a private root, keeping their system paths:
``/usr/share/doc/weka/examples/diabetes.arff`` becomes ``$XMODAL_DATA/usr/share/doc/weka/examples/diabetes.arff``.

:func:`find_debian_file` looks in the system path first, then under :func:`debian_data_root`
(``$XMODAL_DATA``, default ``~/.cache/xmodal/debian``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "FETCH_SCRIPT", "debian_data_root", "debian_roots", "find_debian_file", "fetch_hint"]

#: Environment variable naming the folder ``scripts/fetch_debian_data.sh`` unpacks into.
DATA_ENV = "XMODAL_DATA"
FETCH_SCRIPT = "scripts/fetch_debian_data.sh"


def debian_data_root() -> Path:
    """``$XMODAL_DATA``, default ``~/.cache/xmodal/debian`` (not created)."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xmodal" / "debian"


def debian_roots() -> list[Path]:
    """The roots searched, in order: ``/`` (installed packages), then :func:`debian_data_root`."""
    return [Path("/"), debian_data_root()]


def find_debian_file(*candidates: str) -> Path | None:
    """The first existing file among ``candidates`` (absolute system paths) under any of :func:`debian_roots`.

    Every candidate is tried under ``/`` first, then all of them under the private root, so an
    installed package wins over a fetched copy.
    """
    for root in debian_roots():
        for c in candidates:
            p = root / c.lstrip("/")
            if p.is_file():
                return p
    return None


def fetch_hint(package: str) -> str:
    """The fix quoted in errors: how to get ``package``'s data with or without root."""
    return (
        f"run {FETCH_SCRIPT} (downloads Debian's {package} without root and unpacks its data under "
        f"${DATA_ENV}, now {debian_data_root()}), or as root: apt-get install {package}"
    )
