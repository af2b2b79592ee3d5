"""The run configuration: the one definition of every setting a run takes.

:class:`RunConfig` is the single source from which the rest derives:

* the estimator's keyword-only parameters (:class:`xmodal.CrossModalEstimator` reads its signature,
  defaults and ``get_params`` from :data:`PARAMS`);
* the command-line options of ``xmodal fit`` / ``compare`` / ``tune`` (:func:`add_cli_options`,
  with each field's help text and default);
* the settings that ``compare`` and ``bench`` share between cells (:data:`SHARED`: every field but
  the ones that vary per cell);
* the run key that guards a resumed run (:meth:`RunConfig.run_key`);
* the names a tuning search space may set (:mod:`xmodal.tuning.space` checks them against :data:`PARAMS`);
* a file: ``xmodal fit --config run.yaml`` (or ``.json``) reads one, :meth:`RunConfig.save` writes
  one, and the tuner writes its best configuration in this format.

This module imports nothing heavy (no torch), so the command line can parse and validate options
before any weights load. ``None`` for ``max_tokens``, ``epochs``, ``batch_size``, ``lr`` means
*automatic*: :mod:`xmodal.defaults` derives the value from the data at fit time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from xmodal.errors import XmodalError

#: the precisions a run may ask for (:func:`xmodal.runtime.amp_dtype` says what each means on a device)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

__all__ = [
    "RunConfig",
    "PARAMS",
    "SHARED",
    "PER_CELL",
    "default_of",
    "add_cli_options",
    "config_from_cli",
    "read_config_file",
]

_GROUPS = ("model and strategy", "training", "alignment (stage 2)", "validation", "runtime")


def _opt(default: Any, help: str, group: str, *, cli: str = "plain", key: bool = True, per_cell: bool = False,
         choices: Iterable[str] | None = None) -> Any:
    """A field with its CLI help, option group, parser kind, and whether it enters the run key / varies per cell."""
    meta = {"help": help, "group": group, "cli": cli, "key": key, "per_cell": per_cell,
            "choices": tuple(choices) if choices else None}
    if isinstance(default, (dict, list, tuple)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    """Every setting of a run (see the module docstring for what derives from it).

    Model and strategy:
        task: ``"auto"`` (inferred from ``y``), ``"classification"``, ``"multilabel"``, ``"regression"``,
            ``"dense-classification"`` or ``"dense-regression"``.
        body: a named body (``xmodal bodies``), a local model folder, a hub id, or ``"auto"``: chosen on the
            training data among the installed offline bodies by ``xmodal.estimator.body_selection``.
        strategy: a transfer strategy by name (``xmodal strategies``), or ``"auto"``: fit each of
            ``candidates`` on the validation split and keep the best. ``None``: from ``align``/``mode``.
        candidates: the strategies ``strategy="auto"`` tries (default orca and finetune).
        align: stage-2 aligner (``None``: OTDD, or none for ``mode="scratch"``).
        mode: stage-3 mode: ``full``, ``fpt``, ``frozen`` or ``scratch``.
        max_tokens: token budget of the embedder (``None``: automatic, :mod:`xmodal.defaults`).
        spatial_dims: spatial axes of ``X`` when it has no channel axis (e.g. 2 for ``(N, H, W)``).

    Training (stage 3):
        epochs: passes over the training data (``None``: automatic, from the training-set size).
        batch_size: samples per forward pass (``None``: automatic).
        lr: peak learning rate (``None``: automatic).
        weight_decay, optimizer (``adamw``/``adam``/``sgd``), warmup_ratio (fraction of steps in linear
        warm-up, then linear decay to 0), accumulate (forward passes per optimiser step),
        clip_grad_norm (``0`` disables).

    Alignment (stage 2):
        align_epochs, align_lr: ``None`` is the aligner's own default (distance objectives 60 epochs,
            warm-up 5, MoNA 10; lr 1e-3, MoNA 3e-5).
        align_steps: optimiser steps per stage-2 epoch (distance objectives).
        align_options: objective options, e.g. ``{"inner": "exact"}`` (OTDD) or ``{"lam": 0.5}`` (MoNA).
        align_curve_per_class: the per-epoch stage-2 distance uses at most this many target samples per
            class (``None``: all).
        proxy: source proxy (``None``: the body's own, ``wnut16`` or ``mnist``).
        source_size: proxy samples embedded once and cached (ORCA: 5000).

    Validation:
        validation: fraction of the training data held out (stratified for classification) to score
            the run and to make every automatic choice (tuning, ``strategy="auto"``); ``0``: none. The
            test split is never used for a choice.
        refit: after the validation run, fit again on the whole training data with the same (or the
            chosen) settings, as scikit-learn's search estimators do; ``False`` keeps the model trained
            on the rest of the training data.

    Runtime:
        seed: seeds the split, weight init, shuffling and dropout (0 … 2³²−1); CPU runs repeat exactly.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:N``.
        precision: ``auto`` (bf16 autocast on CUDA, fp16 with a gradient scaler on GPUs without bf16, fp32
            on CPU), ``fp32``, ``bf16`` or ``fp16``.
        verbose: progress bars.
    """

    # ---- model and strategy
    task: str = _opt("auto", "auto | classification | multilabel | regression | dense-classification | "
                     "dense-regression (auto: inferred from y)", "model and strategy")
    body: str = _opt("minilm-l6", "body name (`xmodal bodies`), model folder or hub id", "model and strategy")
    strategy: str | None = _opt(None, "transfer strategy (`xmodal strategies`), or 'auto': try --candidates on "
                                "the validation split and keep the best (default: from --align/--mode, i.e. orca)",
                                "model and strategy", cli="optional_str", per_cell=True)
    candidates: tuple = _opt(("orca", "finetune"), "strategies that --strategy auto tries, comma-separated",
                             "model and strategy", cli="str_list")
    align: str | None = _opt(None, "stage-2 aligner: none | warmup | otdd | mmd | euclidean | transrate | mona "
                             "(default: otdd; none with --mode scratch); must agree with --strategy",
                             "model and strategy", cli="optional_str", per_cell=True)
    mode: str = _opt("full", "stage-3 mode: full | fpt | frozen | scratch; must agree with --strategy",
                     "model and strategy", per_cell=True)
    max_tokens: int | None = _opt(None, "token budget of the embedder; fewer = coarser patches, faster "
                                  "(auto: from the input size, see xmodal.defaults)", "model and strategy",
                                  cli="auto_int")
    spatial_dims: int | None = _opt(None, "spatial axes of X when it has no channel axis, e.g. 2 for (N, H, W) "
                                    "(default: none, X has a channel axis)", "model and strategy",
                                    cli="optional_int")
    # ---- training
    epochs: int | None = _opt(None, "stage-3 epochs (auto: from the training-set size)", "training", cli="auto_int")
    batch_size: int | None = _opt(None, "samples per forward pass (auto: from the training-set size)", "training",
                                  cli="auto_int")
    lr: float | None = _opt(None, "stage-3 peak learning rate (auto: see xmodal.defaults)", "training",
                            cli="auto_float")
    weight_decay: float = _opt(0.0, "decoupled (AdamW) or L2 (Adam, SGD) weight decay", "training")
    optimizer: str = _opt("adamw", "stage-3 optimiser", "training", choices=("adamw", "adam", "sgd"))
    warmup_ratio: float = _opt(0.1, "fraction of optimiser steps in linear warm-up, then linear decay to 0",
                               "training")
    accumulate: int = _opt(1, "forward passes per optimiser step (effective batch = batch size × this)",
                           "training")
    clip_grad_norm: float = _opt(1.0, "max global gradient norm; 0 disables clipping", "training")
    # ---- alignment
    align_epochs: int | None = _opt(None, "stage-2 epochs (auto: the aligner's own, distances 60, warmup 5, "
                                    "mona 10)", "alignment (stage 2)", cli="auto_int")
    align_lr: float | None = _opt(None, "stage-2 learning rate (auto: 1e-3; mona 3e-5)", "alignment (stage 2)",
                                  cli="auto_float")
    align_steps: int = _opt(4, "stage-2 optimiser steps per epoch (distance objectives)", "alignment (stage 2)")
    align_options: dict | None = _opt(None, "stage-2 objective option KEY=VALUE, repeatable, e.g. inner=exact "
                                      "(otdd) or lam=0.5 (mona)", "alignment (stage 2)", cli="options")
    align_curve_per_class: int | None = _opt(100, "the per-epoch stage-2 distance uses at most N target samples "
                                             "per class ('all': the full set)", "alignment (stage 2)",
                                             cli="all_int")
    proxy: str | None = _opt(None, "source proxy: wnut16 | mnist | fashion-mnist | a CoNLL file (default: the "
                             "body's own)", "alignment (stage 2)", cli="optional_str")
    source_size: int = _opt(5000, "proxy samples embedded once and cached", "alignment (stage 2)")
    # ---- validation
    validation: float = _opt(0.2, "fraction of the training data held out (stratified) to score the run and "
                             "make automatic choices; 0: none", "validation")
    refit: bool = _opt(True, "after the validation run, fit again on all the training data (--no-refit keeps "
                       "the model trained without the validation rows)", "validation", cli="bool")
    # ---- runtime
    seed: int = _opt(0, "seed of the split, init, shuffling and dropout (0 … 2^32-1)", "runtime", per_cell=True)
    device: str = _opt("auto", "auto | cpu | cuda | cuda:N | mps", "runtime", key=False)
    precision: str = _opt("auto", "auto (bf16 on CUDA, fp16 on GPUs without bf16) | fp32 | bf16 | fp16", "runtime",
                          choices=PRECISIONS)
    verbose: bool = _opt(True, "progress bars", "runtime", cli="none", key=False)

    # ------------------------------------------------------------------ validation of values
    def __post_init__(self) -> None:
        if isinstance(self.candidates, list):
            self.candidates = tuple(self.candidates)

    def validate(self) -> RunConfig:
        """Check types and ranges (not names of strategies/bodies: the estimator checks those).

        Raises:
            XmodalError: one message naming the setting, the value and what is allowed.
        """
        _int("max_tokens", self.max_tokens, 1, optional=True)
        _int("spatial_dims", self.spatial_dims, 1, optional=True, hi=3)
        _int("epochs", self.epochs, 0, optional=True)
        _int("batch_size", self.batch_size, 1, optional=True)
        _int("accumulate", self.accumulate, 1)
        _int("align_epochs", self.align_epochs, 0, optional=True)
        _int("align_steps", self.align_steps, 1)
        _int("align_curve_per_class", self.align_curve_per_class, 2, optional=True)
        _int("source_size", self.source_size, 2)
        _int("seed", self.seed, 0, hi=2**32 - 1)
        _float("lr", self.lr, 0.0, open_lo=True, optional=True)
        _float("align_lr", self.align_lr, 0.0, open_lo=True, optional=True)
        _float("weight_decay", self.weight_decay, 0.0)
        _float("warmup_ratio", self.warmup_ratio, 0.0, hi=1.0, open_hi=True)
        _float("clip_grad_norm", self.clip_grad_norm, 0.0)
        _float("validation", self.validation, 0.0, hi=1.0, open_hi=True)
        for name in ("task", "body", "mode", "optimizer", "device", "precision"):
            if not isinstance(getattr(self, name), str):
                raise XmodalError(f"{name} must be a string, got {getattr(self, name)!r}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise XmodalError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        for name in ("optimizer", "precision"):
            choices = _FIELDS[name].metadata["choices"]
            if getattr(self, name) not in choices:
                raise XmodalError(f"{name} must be one of {list(choices)}, got {getattr(self, name)!r}")
        if not isinstance(self.refit, bool):
            raise XmodalError(f"refit must be True or False, got {self.refit!r}")
        if not self.candidates or not all(isinstance(c, str) for c in self.candidates):
            raise XmodalError(f"candidates must be a non-empty list of strategy names, got {self.candidates!r}")
        if self.align_options is not None and not isinstance(self.align_options, Mapping):
            raise XmodalError(f"align_options must be a dict of objective options, got {self.align_options!r}")
        return self

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> dict[str, Any]:
        """All settings as JSON-ready values (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunConfig:
        """Settings from a mapping; unknown names raise :class:`XmodalError` listing the known ones."""
        unknown = sorted(set(d) - set(PARAMS))
        if unknown:
            raise XmodalError(f"unknown setting(s) {unknown}; known: {list(PARAMS)}")
        return cls(**dict(d))

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` (names checked)."""
        unknown = sorted(set(changes) - set(PARAMS))
        if unknown:
            raise XmodalError(f"unknown setting(s) {unknown}; known: {list(PARAMS)}")
        return replace(self, **changes)

    def run_key(self) -> dict[str, Any]:
        """The settings that make two runs the same run (everything but ``device`` and ``verbose``)."""
        return {k: v for k, v in self.to_dict().items() if _FIELDS[k].metadata["key"]}

    def changed(self) -> dict[str, Any]:
        """The settings that differ from the defaults (what a config file needs to say)."""
        base = RunConfig().to_dict()
        return {k: v for k, v in self.to_dict().items() if v != base[k]}

    def save(self, path: str | Path, header: str | None = None) -> Path:
        """Write every setting to ``path`` (``.yaml``/``.yml`` or ``.json``), atomically."""
        path = Path(path)
        data = self.to_dict()
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(data, sort_keys=False)
            if header:
                text = "".join(f"# {line}\n" for line in header.splitlines()) + text
        elif path.suffix.lower() == ".json":
            text = json.dumps(data, indent=1)
        else:
            raise XmodalError(f"cannot write {path}: a run configuration file ends in .yaml, .yml or .json")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a file written by :meth:`save` (or by hand: any subset of the settings)."""
        return cls.from_dict(read_config_file(path)).validate()


#: every setting, in declaration order (the estimator's parameters)
PARAMS: tuple[str, ...] = tuple(f.name for f in fields(RunConfig))
_FIELDS = {f.name: f for f in fields(RunConfig)}
#: settings that vary per cell of a comparison (strategy and seed, and align/mode that a strategy sets)
PER_CELL: tuple[str, ...] = tuple(n for n in PARAMS if _FIELDS[n].metadata["per_cell"])
#: settings that ``compare``/``bench`` give every cell alike
SHARED: tuple[str, ...] = tuple(n for n in PARAMS if n not in PER_CELL and n != "verbose")


def default_of(name: str) -> Any:
    """The default of setting ``name`` (so that lower layers restate no default)."""
    f = _FIELDS[name]
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.yaml``/``.yml``/``.json`` run configuration file.

    Raises:
        XmodalError: missing or unreadable file, not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise XmodalError(f"configuration file {path} does not exist")
    try:
        text = path.read_text()
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise XmodalError(f"cannot read {path}: a run configuration file ends in .yaml, .yml or .json")
    except XmodalError:
        raise
    except Exception as exc:
        raise XmodalError(f"cannot parse {path} ({exc}); fix the file or write it with RunConfig.save") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise XmodalError(f"{path} must hold a mapping of settings (name: value), got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------- checks
def _int(name: str, v: Any, lo: int, *, optional: bool = False, hi: int | None = None) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            raise XmodalError(f"{name} must be a whole number (int), got the float {v!r}; pass {int(v)}")
        raise XmodalError(f"{name} must be an integer{' or None (auto)' if optional else ''}, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        rng = f"≥ {lo}" if hi is None else f"in {lo} … {hi}"
        raise XmodalError(f"{name} must be {rng}, got {v}")


def _float(name: str, v: Any, lo: float, *, open_lo: bool = False, hi: float | None = None,
           open_hi: bool = False, optional: bool = False) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise XmodalError(f"{name} must be a number{' or None (auto)' if optional else ''}, got {v!r}")
    if not math.isfinite(v):
        raise XmodalError(f"{name} must be finite, got {v}")
    bad = v <= lo if open_lo else v < lo
    if hi is not None:
        bad = bad or (v >= hi if open_hi else v > hi)
    if bad:
        lo_s = f"> {lo}" if open_lo else f"≥ {lo}"
        hi_s = "" if hi is None else (f" and < {hi}" if open_hi else f" and ≤ {hi}")
        raise XmodalError(f"{name} must be {lo_s}{hi_s}, got {v}")


# ---------------------------------------------------------------------- command line
def _auto(cast: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if text.strip().lower() == "auto":
            return None
        try:
            return cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None

    return parse


def _all_int(text: str) -> int | None:
    if text.strip().lower() in ("all", "none"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'all', got {text!r}") from None


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → ``(key, JSON value or the plain string)``."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def _str_list(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _optional_int(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "auto_int": _auto(int), "auto_float": _auto(float), "all_int": _all_int, "optional_int": _optional_int,
    "optional_str": str, "str_list": _str_list,
}


def _shown(v: Any) -> str:
    if v is None:
        return "auto"
    if isinstance(v, tuple):
        return ",".join(v)
    return str(v)


def add_cli_options(parser: argparse.ArgumentParser, exclude: Iterable[str] = ()) -> None:
    """Add one ``--option`` per setting (grouped, with its help and default) to ``parser``.

    Options a user does not give stay out of the parsed namespace (``argparse.SUPPRESS``), so that
    :func:`config_from_cli` can layer defaults ← ``--config`` file ← the options given.
    """
    skip = set(exclude)
    groups = {g: parser.add_argument_group(g) for g in _GROUPS}
    for f in fields(RunConfig):
        kind = f.metadata["cli"]
        if f.name in skip or kind == "none":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = default_of(f.name)
        help_ = f.metadata["help"]
        if "default:" not in help_:  # the help says it itself where None is not "auto"
            help_ += f" (default: {_shown(default)})"
        g = groups[f.metadata["group"]]
        if kind == "bool":
            g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=help_)
        elif kind == "options":
            g.add_argument("--align-option", dest=f.name, type=_option, action="append", default=argparse.SUPPRESS,
                           metavar="KEY=VALUE", help=help_)
        elif kind == "plain":
            g.add_argument(flag, dest=f.name, type=type(default), default=argparse.SUPPRESS, help=help_,
                           choices=f.metadata["choices"])
        else:
            g.add_argument(flag, dest=f.name, type=_PARSERS[kind], default=argparse.SUPPRESS, help=help_,
                           metavar=f.name.upper())


def config_from_cli(args: argparse.Namespace, base: RunConfig | None = None, **overrides: Any) -> RunConfig:
    """The run configuration of a command line: ``base`` (or the file of ``--config``, or the defaults),
    then the options given on the command line, then ``overrides``; validated."""
    cfg = base if base is not None else RunConfig()
    config_file = getattr(args, "config", None)
    if base is None and config_file:
        cfg = RunConfig.load(config_file)
    given = {k: v for k, v in vars(args).items() if k in _FIELDS}
    if "align_options" in given:
        given["align_options"] = dict(given["align_options"]) or None
    return cfg.replace(**given, **overrides).validate()
