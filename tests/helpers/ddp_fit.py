"""A small fit run by ``tests/test_distributed.py``, alone (``python ddp_fit.py OUT``) or under
``torchrun --nproc_per_node 2 ddp_fit.py OUT``: stage 2 (OTDD) and stage 3 of a tiny random ViT on a
learnable series task, with a checkpoint folder.

Every process writes ``OUT/weights-<rank>.safetensors`` (its final weights) and rank 0 writes
``OUT/report.json`` (the stage-2 and stage-3 histories). ``--stop-after K`` stops stage 3 after its
K-th epoch as a killed run would (the checkpoint keeps epoch K); a second call with the same OUT resumes.

The settings make the comparison a test of the data-parallel arithmetic, not of rounding: Adam-type
steps divide each gradient entry by its own magnitude, so an entry that is a near-cancelling sum carries
its rounding error (which depends on how the sum is split, between processes or threads) into a full-size
step. With stage 3 on AdamW at lr 1e-3, one process run with 1 and with 2 threads already ends 2.4e-4
apart. Stage 3 therefore uses SGD, stage 2 (AdamW, fixed) a small lr, and OTDD's Sinkhorn a fixed number of
iterations (no tolerance-based stop whose iteration count could differ by one).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from xmodal import CrossModalEstimator

SETTINGS = dict(body="vit-tiny-random", validation=0, max_tokens=8, batch_size=10, accumulate=2, epochs=3,
                lr=1e-2, optimizer="sgd", align="otdd", align_lr=1e-4, align_epochs=2, align_steps=2,
                align_options={"tol": 1e-30, "max_iters": 200}, source_size=64, device="cpu", verbose=False, seed=0)


class Stop(Exception):
    """Raised by the epoch callback to end the run as a kill would."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--stop-after", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shift = rng.uniform(0.3, 1.0, 45) * rng.choice([-1.0, 1.0], 45)
    X = (rng.normal(size=(45, 1, 16)) + shift[:, None, None]).astype(np.float32)  # 45 rows: uneven last batch
    y = (X.mean(axis=(1, 2)) > 0).astype(np.int64)

    def on_epoch(record: dict) -> None:
        if args.stop_after and record["epoch"] > args.stop_after:
            raise Stop

    est = CrossModalEstimator(**{**SETTINGS, "epochs": args.epochs})
    try:
        est.fit(X, y, checkpoint_dir=out / "checkpoints", on_epoch=on_epoch)
    except Stop:
        return
    rank = int(os.environ.get("RANK", "0"))
    save_file({k: v.contiguous() for k, v in est.model_.state_dict().items()}, str(out / f"weights-{rank}.safetensors"))
    if rank == 0:
        (out / "report.json").write_text(json.dumps({"align": est.report_.align["history"],
                                                     "finetune": est.report_.finetune}))
    est.save(out / "model")


if __name__ == "__main__":
    main()
