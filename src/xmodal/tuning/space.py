"""The search space of ``xmodal tune``: which settings a trial varies, and over which values.

A space maps :class:`~xmodal.config.RunConfig` setting names to distributions. :data:`ORCA_SPACE`
is ORCA's (appendix A.3.3 of the ORCA paper: learning rate and weight decay log-uniform in
``[1e-6, 1e-2]``, optimiser SGD/Adam/AdamW, batch size via gradient accumulation) plus the knobs of
xmodal that matter at small budgets: the token budget (patch size), the number of epochs and the
warm-up share. :data:`LOCAL_SPACE`, the default (:data:`DEFAULT_SPACE`), varies the same settings
near the automatic ones.

A space is written in Python or in a YAML/JSON file (``xmodal tune --space space.yaml``), one entry
per setting::

    lr: {log: [1.0e-6, 1.0e-2]}        # log-uniform float
    warmup_ratio: {uniform: [0, 0.3]}  # uniform float
    align_steps: {int: [2, 8]}         # uniform integer
    optimizer: [adamw, adam, sgd]      # a choice
    epochs: {scale: [0.5, 1, 2]}       # a multiple of the automatic value for the data

``scale`` distributions sample a factor that multiplies the setting's automatic value
(:func:`xmodal.defaults.resolve_settings`), so one space fits data of every size; Optuna records
the factor as ``<name>_scale``.

Named spaces (:data:`SPACES`, ``xmodal tune --space NAME``):

* ``local`` (:data:`LOCAL_SPACE`, the default, :data:`DEFAULT_SPACE_NAME`): the neighbourhood of the
  automatic settings (learning rate within 10× of the automatic one, Adam/AdamW, token budget and
  epochs halved or doubled), for short budgets where a study finishes only a handful of trials;
* ``orca`` (:data:`ORCA_SPACE`): ORCA's wide space, learning rate over four decades and three
  optimisers, for studies long enough to explore it;
* ``local-floor`` (:data:`FLOOR_SPACE`): ``local`` without the halved epochs, so that no trial trains
  for less than the automatic count. On the development half's validation scores it was even with
  ``local`` (``python benchmarks/space_choice.py --spaces local,local-floor --bench-dirs …``,
  ``results/SPACE_CHOICE_FLOOR.md``), so ``local`` stays the default.

Why ``local`` is the default: at the default budget (:data:`DEFAULT_BUDGET`, 2 CPU cores) few trials
of the wide space come near the automatic settings (``python benchmarks/tuned_suite.py`` counts, per
region of the wide space, how many sampled trials matched the defaults), and on the suite's
development half of tasks the best validation score of a ``local`` study was at least that of an
``orca`` study on every task (``python benchmarks/space_choice.py``, ``results/SPACE_CHOICE.md``;
validation only). The held-out half's test scores of both spaces are reported in
``results/TUNED_SUITE_LOCAL.md``; the choice was not made on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from xmodal.config import PARAMS, RunConfig, read_config_file
from xmodal.errors import XmodalError
from xmodal.registry import Registry

__all__ = ["DEFAULT_BUDGET", "Distribution", "LogUniform", "Uniform", "IntRange", "Choice", "Scale", "SearchSpace",
           "DEFAULT_SPACE", "DEFAULT_SPACE_NAME", "ORCA_SPACE", "LOCAL_SPACE", "FLOOR_SPACE",
           "SPACES", "UNTUNABLE", "resolve_space"]

#: settings a space may not vary: they define the task and the protocol, not the model
UNTUNABLE = frozenset({"task", "strategy", "candidates", "align", "mode", "spatial_dims", "validation", "refit",
                       "seed", "device", "precision", "verbose"})


class Distribution:
    """One setting's values; :meth:`suggest` draws one from an Optuna trial."""

    kind: ClassVar[str]

    def suggest(self, trial: Any, name: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_spec(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(Distribution):
    """A float drawn uniformly from ``[lo, hi]``."""

    lo: float
    hi: float
    kind: ClassVar[str] = "uniform"
    log: ClassVar[bool] = False

    def __post_init__(self) -> None:
        finite = math.isfinite(self.lo) and math.isfinite(self.hi)
        if not (finite and self.lo < self.hi and (self.lo > 0 or not self.log)):
            need = "0 < lo < hi" if self.log else "finite lo < hi"
            raise XmodalError(f"{self.kind} range needs {need}, got [{self.lo}, {self.hi}]")

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.lo, self.hi, log=self.log)

    def to_spec(self) -> Any:
        return {self.kind: [self.lo, self.hi]}


@dataclass(frozen=True)
class LogUniform(Uniform):
    """A float drawn log-uniformly from ``[lo, hi]`` (``0 < lo < hi``)."""

    kind: ClassVar[str] = "log"
    log: ClassVar[bool] = True


@dataclass(frozen=True)
class IntRange(Distribution):
    """An integer drawn uniformly from ``lo … hi`` (both included)."""

    lo: int
    hi: int
    kind: ClassVar[str] = "int"

    def __post_init__(self) -> None:
        if not (isinstance(self.lo, int) and isinstance(self.hi, int) and self.lo < self.hi):
            raise XmodalError(f"integer range needs whole numbers lo < hi, got [{self.lo}, {self.hi}]")

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.lo, self.hi)

    def to_spec(self) -> Any:
        return {"int": [self.lo, self.hi]}


@dataclass(frozen=True)
class Choice(Distribution):
    """One of ``values`` (strings, numbers, booleans)."""

    values: tuple
    kind: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        if len(self.values) < 1 or len(set(self.values)) != len(self.values):
            raise XmodalError(f"a choice needs distinct values, got {list(self.values)}")

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def to_spec(self) -> Any:
        return list(self.values)


@dataclass(frozen=True)
class Scale(Distribution):
    """A factor from ``factors`` that multiplies the setting's automatic value for the data."""

    factors: tuple[float, ...]
    kind: ClassVar[str] = "scale"

    def __post_init__(self) -> None:
        if not self.factors or any(not (isinstance(f, (int, float)) and f > 0) for f in self.factors):
            raise XmodalError(f"scale factors must be positive numbers, got {list(self.factors)}")

    def suggest(self, trial: Any, name: str) -> float:
        return float(trial.suggest_categorical(f"{name}_scale", [float(f) for f in self.factors]))

    def to_spec(self) -> Any:
        return {"scale": list(self.factors)}


_KINDS: dict[str, type[Distribution]] = {c.kind: c for c in (LogUniform, Uniform, IntRange, Scale)}
_SCALABLE = ("epochs", "max_tokens", "batch_size", "lr")


class SearchSpace:
    """Settings → distributions, checked against :class:`~xmodal.config.RunConfig`.

    Args:
        entries: ``{setting: Distribution}`` (or the file form of the module docstring).

    Raises:
        XmodalError: an unknown or untunable setting, a malformed entry, or ``scale`` on a setting
            that has no automatic value.
    """

    def __init__(self, entries: Mapping[str, Any]) -> None:
        if not entries:
            raise XmodalError("the search space is empty; give at least one setting to tune")
        self.entries: dict[str, Distribution] = {}
        for name, spec in entries.items():
            if name not in PARAMS:
                raise XmodalError(f"search space: unknown setting {name!r}; tunable: {sorted(set(PARAMS) - UNTUNABLE)}")
            if name in UNTUNABLE:
                raise XmodalError(f"search space: {name!r} cannot be tuned (it defines the task or the protocol)")
            dist = spec if isinstance(spec, Distribution) else _parse(name, spec)
            if isinstance(dist, Scale) and name not in _SCALABLE:
                raise XmodalError(f"search space: 'scale' needs a setting with an automatic value {_SCALABLE}, "
                                  f"not {name!r}")
            self.entries[name] = dist

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        """Read a space from a ``.yaml``/``.yml``/``.json`` file (see the module docstring)."""
        return cls(read_config_file(path))

    def to_spec(self) -> dict[str, Any]:
        """The file form of the space."""
        return {name: d.to_spec() for name, d in self.entries.items()}

    def sample(self, trial: Any, auto: RunConfig) -> dict[str, Any]:
        """One trial's settings: ``{setting: value}``; ``scale`` entries multiply ``auto``'s value."""
        values: dict[str, Any] = {}
        for name, dist in self.entries.items():
            v = dist.suggest(trial, name)
            if isinstance(dist, Scale):
                base = getattr(auto, name)
                v = float(base) * v if name == "lr" else max(1, int(round(base * v)))
            values[name] = v
        return values

    def defaults(self, auto: RunConfig) -> dict[str, Any] | None:
        """The Optuna parameters nearest ``auto``'s settings (numbers clipped into their range), or ``None``
        when a choice excludes them. The tuner tries this point first, so that a tuned run starts from
        the defaults' validation score."""
        params: dict[str, Any] = {}
        for name, dist in self.entries.items():
            v = getattr(auto, name)
            if isinstance(dist, Scale):
                if 1 not in dist.factors and 1.0 not in dist.factors:
                    return None
                params[f"{name}_scale"] = 1.0
            elif isinstance(dist, Choice):
                if v not in dist.values:
                    return None
                params[name] = v
            elif isinstance(dist, (Uniform, IntRange)):  # LogUniform is a Uniform
                if v is None:
                    return None
                params[name] = min(max(v, dist.lo), dist.hi)  # e.g. weight_decay 0 → 1e-6
        return params

    def __repr__(self) -> str:
        return f"SearchSpace({self.to_spec()})"


def _number(v: Any) -> Any:
    """YAML 1.1 (PyYAML) reads ``1e-5`` as a string; such strings are numbers here."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _parse(name: str, spec: Any) -> Distribution:
    if isinstance(spec, (list, tuple)):
        return Choice(tuple(spec))
    if isinstance(spec, Mapping) and len(spec) == 1:
        (kind, args), = spec.items()
        cls = _KINDS.get(kind)
        if cls is None:
            raise XmodalError(f"search space: {name}: unknown kind {kind!r}; use one of {sorted(_KINDS)} or a list")
        if cls is Scale:
            if not isinstance(args, (list, tuple)):
                raise XmodalError(f"search space: {name}: 'scale' takes a list of factors, got {args!r}")
            return Scale(tuple(args))
        if not (isinstance(args, (list, tuple)) and len(args) == 2):
            raise XmodalError(f"search space: {name}: {kind!r} takes [lo, hi], got {args!r}")
        lo, hi = (_number(v) for v in args)
        if cls is IntRange:
            return IntRange(lo, hi)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
            raise XmodalError(f"search space: {name}: {kind!r} bounds must be numbers, got {args!r}")
        return cls(float(lo), float(hi))
    raise XmodalError(f"search space: {name}: expected a list of choices or {{kind: args}}, got {spec!r}")


#: ORCA's space (appendix A.3.3) plus the token budget, epochs and warm-up
#: the time budget of a study when none is given: about 10–30 trials on the suite's smaller tasks on a 2-core CPU
#: (``python benchmarks/derive_defaults.py`` prints each study's trial counts and time)
DEFAULT_BUDGET = "5m"

ORCA_SPACE = SearchSpace({
    "lr": LogUniform(1e-6, 1e-2),
    "weight_decay": LogUniform(1e-6, 1e-2),
    "optimizer": Choice(("adamw", "adam", "sgd")),
    "accumulate": Choice((1, 2, 4, 8)),
    "max_tokens": Choice((8, 16, 32, 64)),
    "epochs": Scale((0.5, 1.0, 2.0)),
    "warmup_ratio": Choice((0.0, 0.1, 0.2)),
})

#: the automatic settings' neighbourhood, for short studies (see the module docstring)
LOCAL_SPACE = SearchSpace({
    "lr": Scale((0.1, 0.3, 1.0, 3.0, 10.0)),
    "weight_decay": LogUniform(1e-6, 1e-2),
    "optimizer": Choice(("adamw", "adam")),
    "accumulate": Choice((1, 2, 4)),
    "max_tokens": Scale((0.5, 1.0, 2.0)),
    "epochs": Scale((0.5, 1.0, 2.0)),
    "warmup_ratio": Choice((0.0, 0.1, 0.2)),
})

#: the local space with the automatic epochs as a floor: a trial runs the automatic count or twice it, never
#: half, so that ASHA (epochs are its resource) compares trials that all train at least as long as the defaults
FLOOR_SPACE = SearchSpace({**LOCAL_SPACE.entries, "epochs": Scale((1.0, 2.0))})

#: named search spaces: ``xmodal tune --space NAME`` (a file path is read with :meth:`SearchSpace.from_file`)
SPACES: Registry[SearchSpace] = Registry("search space", sort=False)
SPACES.add("local", LOCAL_SPACE)
SPACES.add("orca", ORCA_SPACE)
SPACES.add("local-floor", FLOOR_SPACE)

#: the space of a study when none is given (see the module docstring for why)
DEFAULT_SPACE_NAME = "local"
DEFAULT_SPACE = SPACES[DEFAULT_SPACE_NAME]


def resolve_space(space: SearchSpace | Mapping[str, Any] | str | Path | None) -> SearchSpace:
    """A :class:`SearchSpace` from what a user gives: ``None`` (:data:`DEFAULT_SPACE`), a space, a mapping
    in the file form, a name in :data:`SPACES`, or a ``.yaml``/``.yml``/``.json`` file.

    Raises:
        XmodalError: a string that is neither a registered name nor a space file, or a malformed space.
    """
    if space is None:
        return DEFAULT_SPACE
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, Mapping):
        return SearchSpace(space)
    text = str(space)
    if text in SPACES:
        return SPACES[text]
    if Path(text).suffix.lower() in (".yaml", ".yml", ".json"):
        return SearchSpace.from_file(text)
    raise XmodalError(f"search space {text!r}: not a named space ({', '.join(SPACES.choices())}) nor a "
                      ".yaml/.yml/.json file")
