"""Transfer strategies: every recipe of the ORCA and MoNA papers, selectable by one name.

A :class:`Strategy` fixes the three choices a cross-modal run makes:

* ``embedder_init`` — how the embedder's patch projection starts (stage 1): ``"random"`` (PyTorch's
  default init) or ``"body"`` (derived from the body's own pretrained input embedding, MoNA's
  *Finetuning++*; see :mod:`xmodal.model.embedder_init`);
* ``align`` — the stage-2 aligner, a name in :data:`xmodal.align.ALIGNERS`;
* ``mode`` — the stage-3 fine-tuning mode, a name in :data:`xmodal.train.modes.MODES`.

======================  =========  =======  ====  ===========================================
name                    align      mode     init  paper
======================  =========  =======  ====  ===========================================
``finetune``            none       full     rand  vanilla fine-tuning (MoNA "Finetuning")
``finetune++``          none       full     body  MoNA "Finetuning++"
``frozen``              none       frozen   rand  MoNA "Frozen-encoder"
``fpt``                 none       fpt      rand  FPT (Lu et al.), ORCA's baseline
``scratch``             none       scratch  rand  train from scratch (both papers' baseline)
``warmup``              warmup     full     rand  two-stage with a task warm-up of f and h
``orca``                otdd       full     rand  ORCA (OTDD alignment)
``orca-mmd``            mmd        full     rand  ORCA's MMD ablation
``orca-euclidean``      euclidean  full     rand  ORCA's Euclidean ablation
``orca-transrate``      transrate  full     rand  ORCA's TransRate ablation
``mona``                mona       full     rand  MoNA (meta-learned alignment)
======================  =========  =======  ====  ===========================================

Aligner and mode names are *not* checked when a strategy is registered — ``mona`` is registered
even where no ``mona`` aligner exists — but only when a strategy is used (:meth:`Strategy.validate`).
This module imports nothing heavy, so the command line can list strategies without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xmodal.errors import XmodalError
from xmodal.registry import Registry

__all__ = [
    "Strategy",
    "STRATEGIES",
    "DEFAULT_ALIGN",
    "DEFAULT_MODE",
    "default_align",
    "EMBEDDER_INITS",
    "CUSTOM",
    "AUTO",
    "register_strategy",
    "get_strategy",
    "list_strategies",
    "strategy_for",
    "resolve_strategy",
]

#: the aligner that ``align=None`` (the estimator's default) runs: ORCA's OTDD alignment, since it beat
#: plain fine-tuning on 5 of 8 built-in tasks over 3 seeds, tied on 1 and trailed by about one standard
#: deviation on 2 (results/RESULTS.md, claim (a)). ``mode="scratch"`` runs no stage 2 by default (its
#: body is random, so there is no source modality to align to).
DEFAULT_ALIGN = "otdd"
#: the estimator's default ``mode``: a strategy overrides it without conflict
DEFAULT_MODE = "full"
#: how the embedder's patch projection starts
EMBEDDER_INITS = ("random", "body")
#: the name recorded for an (align, mode) pair that no registered strategy runs
CUSTOM = "custom"
#: ``strategy="auto"``: the estimator fits its candidates on the validation split and keeps the best
AUTO = "auto"


@dataclass(frozen=True)
class Strategy:
    """One transfer recipe.

    Attributes:
        name: the registry name (``"orca"``, ``"finetune++"``, …).
        description: one line for ``xmodal strategies``.
        align: stage-2 aligner name (:data:`xmodal.align.ALIGNERS`).
        mode: stage-3 mode name (:data:`xmodal.train.modes.MODES`).
        embedder_init: ``"random"`` or ``"body"`` (see :func:`xmodal.model.embedder_init.init_projection_from_body`).
    """

    name: str
    description: str
    align: str
    mode: str
    embedder_init: str = "random"

    def __post_init__(self) -> None:
        if self.embedder_init not in EMBEDDER_INITS:
            raise XmodalError(
                f"strategy {self.name!r}: embedder_init must be one of {list(EMBEDDER_INITS)}, "
                f"got {self.embedder_init!r}"
            )

    def validate(self) -> tuple[Any, Any]:
        """The stage-2 :class:`~xmodal.align.Aligner` and stage-3 :class:`~xmodal.train.modes.FinetuneMode` it runs.

        Looked up now, not at registration, so strategies whose aligner comes from another module
        (``mona``) can be registered first.

        Raises:
            XmodalError: the aligner or the mode is not registered here.
        """
        from xmodal.train import ALIGNERS, get_aligner
        from xmodal.train.modes import get_mode

        if self.name != CUSTOM and self.align not in ALIGNERS:
            raise XmodalError(
                f"strategy {self.name!r} needs the stage-2 aligner {self.align!r}, which is not available in "
                f"this installation (aligners: {sorted(ALIGNERS)}); choose another strategy (`xmodal strategies`)"
            )
        return get_aligner(self.align), get_mode(self.mode)

    def to_dict(self) -> dict[str, str]:
        """``{"name", "align", "mode", "embedder_init"}``: what a run records."""
        return {"name": self.name, "align": self.align, "mode": self.mode, "embedder_init": self.embedder_init}


STRATEGIES: Registry[Strategy] = Registry("strategy", hint=" (`xmodal strategies` describes them)", sort=False)


def register_strategy(strategy: Strategy) -> Strategy:
    """Add ``strategy`` to :data:`STRATEGIES` (a name may be registered once)."""
    if strategy.name in STRATEGIES or strategy.name in (CUSTOM, AUTO):
        raise XmodalError(f"strategy name {strategy.name!r} is taken")
    return STRATEGIES.add(strategy.name, strategy)


def get_strategy(name: str) -> Strategy:
    """The registered strategy called ``name``.

    Raises:
        XmodalError: unknown name (the message lists the known ones).
    """
    return STRATEGIES[name]


def list_strategies() -> list[Strategy]:
    """Every registered strategy, in registration order."""
    return list(STRATEGIES.values())


def strategy_for(align: str, mode: str, embedder_init: str = "random") -> str:
    """The name of the registered strategy that runs ``(align, mode, embedder_init)``, else ``"custom"``."""
    for s in STRATEGIES.values():
        if (s.align, s.mode, s.embedder_init) == (align, mode, embedder_init):
            return s.name
    return CUSTOM


def default_align(mode: str = DEFAULT_MODE) -> str:
    """The aligner that ``align=None`` runs with ``mode``: :data:`DEFAULT_ALIGN`, or ``"none"`` for ``scratch``."""
    return "none" if mode == "scratch" else DEFAULT_ALIGN


def resolve_strategy(strategy: str | None, align: str | None = None, mode: str = DEFAULT_MODE) -> Strategy:
    """The strategy that a ``(strategy, align, mode)`` setting runs (the estimator's three arguments).

    * ``strategy=None``: ``align`` and ``mode`` as given (``align=None``: :func:`default_align`, i.e.
      OTDD alignment, none for ``mode="scratch"``), random embedder init; the name is the matching
      registered strategy (``align="otdd"`` → ``"orca"``) or ``"custom"``.
    * ``strategy=NAME``: that strategy. ``align``/``mode`` must be left unset (``None``/``"full"``)
      or equal the strategy's own.

    Neither aligner nor mode is looked up here (see :meth:`Strategy.validate`).

    Raises:
        XmodalError: unknown strategy name, or ``align``/``mode`` contradicting it.
    """
    if strategy is None:
        align = default_align(mode) if align is None else align
        name = strategy_for(align, mode)
        if name != CUSTOM:
            return STRATEGIES[name]
        return Strategy(CUSTOM, f"align={align}, mode={mode}", align, mode)
    s = get_strategy(strategy)
    conflicts = []
    if align is not None and align != s.align:
        conflicts.append(f"align={align!r}")
    if mode != DEFAULT_MODE and mode != s.mode:
        conflicts.append(f"mode={mode!r}")
    if conflicts:
        raise XmodalError(
            f"strategy {s.name!r} runs align={s.align!r} and mode={s.mode!r}, which conflicts with "
            f"{' and '.join(conflicts)}; pass either the strategy or align/mode, not both"
        )
    return s


for _s in (
    Strategy("finetune", "vanilla fine-tuning of everything (MoNA 'Finetuning')", "none", "full"),
    Strategy("finetune++", "fine-tuning, embedder started from the body's input embedding (MoNA)",
             "none", "full", "body"),
    Strategy("frozen", "body frozen; train embedder and head (MoNA 'Frozen-encoder')", "none", "frozen"),
    Strategy("fpt", "train embedder, head and the body's layer norms (FPT)", "none", "fpt"),
    Strategy("scratch", "random body, everything trained (train-from-scratch baseline)", "none", "scratch"),
    Strategy("warmup", "task warm-up of embedder and head through the frozen body, then fine-tuning",
             "warmup", "full"),
    Strategy("orca", "ORCA: embedder aligned to the source proxy by OTDD, then fine-tuning", "otdd", "full"),
    Strategy("orca-mmd", "ORCA ablation: alignment by MMD, then fine-tuning", "mmd", "full"),
    Strategy("orca-euclidean", "ORCA ablation: alignment by pairwise Euclidean distance, then fine-tuning",
             "euclidean", "full"),
    Strategy("orca-transrate", "ORCA ablation: alignment by maximising TransRate, then fine-tuning",
             "transrate", "full"),
    Strategy("mona", "MoNA: embedder meta-learned to keep the body's source knowledge, then fine-tuning",
             "mona", "full"),
):
    register_strategy(_s)
del _s
