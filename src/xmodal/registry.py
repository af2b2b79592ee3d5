"""One registry type for every named table in xmodal (aligners, bodies, metrics, datasets, ...).

A :class:`Registry` is a read-only mapping from a name to a registered object, filled at import time
with :meth:`Registry.add` or the :meth:`Registry.register` decorator. Looking up a name it does not
hold raises :class:`UnknownName`, whose message names the kind of thing and lists the choices, the
same way for all fourteen tables::

    >>> ALIGNERS["otdd"]            # the registered object
    >>> ALIGNERS["otd"]             # UnknownName: unknown alignment 'otd'; choose one of [...]

:class:`UnknownName` is an :class:`~xmodal.errors.XmodalError` (so the CLI prints it as a one-line
error) and a :class:`KeyError` (so ``name in registry`` and ``registry.get(name)`` behave as for a
dict). :class:`Requirements` is what a registered thing needs installed (datasets, proxies).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from xmodal.errors import XmodalError

T = TypeVar("T")

__all__ = ["Registry", "UnknownName", "Requirements", "LoaderEntry"]


class UnknownName(XmodalError, KeyError):
    """A name that a :class:`Registry` does not hold; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """A name → object table with one error for unknown names.

    Args:
        kind: what the entries are, as the error says it (``"alignment"``, ``"metric"``).
        hint: text appended to the error after the list of choices (e.g. other accepted forms).
        sort: list the choices sorted (default) or in registration order.
    """

    def __init__(self, kind: str, hint: str = "", sort: bool = True) -> None:
        self.kind = kind
        self.hint = hint
        self.sort = sort
        self._items: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name`` and return it; a name registered twice is a bug."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj
        return obj

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator form of :meth:`add`; without ``name`` the object's ``name`` attribute is used."""

        def deco(obj: T) -> T:
            self.add(name if name is not None else obj.name, obj)  # type: ignore[attr-defined]
            return obj

        return deco

    def choices(self) -> list[str]:
        """The registered names, as the error lists them."""
        return sorted(self._items) if self.sort else list(self._items)

    def unknown(self, name: object) -> UnknownName:
        """The error for a name this registry does not hold (raise it)."""
        return UnknownName(f"unknown {self.kind} {name!r}; choose one of {self.choices()}{self.hint}")

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            raise self.unknown(name) from None

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._items
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.choices()})"


@dataclass(frozen=True)
class LoaderEntry:
    """A registered loader of data (a dataset, a source proxy): its name, the zero-argument function that
    loads it, one line on what it is, and what it needs installed."""

    name: str
    loader: Callable[[], object]
    description: str
    needs: Requirements


@dataclass(frozen=True)
class Requirements:
    """What a registered loader needs: importable modules, how to install them, and a file check.

    Attributes:
        modules: top-level modules (looked up with ``find_spec``, never imported).
        install: the command that provides them, quoted in errors (``"pip install aeon"``).
        check: optional ``() -> bool`` saying whether the data files are present.
    """

    modules: tuple[str, ...] = ()
    install: str = ""
    check: Callable[[], bool] | None = None

    def missing(self) -> list[str]:
        """The modules in :attr:`modules` that are not installed."""
        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    def available(self) -> bool:
        """Whether the modules are installed and the file check passes (a broken package counts as absent)."""
        if self.missing():
            return False
        try:
            return self.check() if self.check is not None else True
        except Exception:  # noqa: BLE001 - any failure of a probe means "not available"
            return False
