"""Disk used by a finished run folder: ``xmodal fit`` with a strategy on a small task, then ``du`` per entry.

    python benchmarks/run_folder_size.py --data breast-cancer --strategies finetune,orca --body minilm-l6
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="breast-cancer")
    p.add_argument("--strategies", default="finetune,orca")
    p.add_argument("--body", default="minilm-l6")
    p.add_argument("--epochs", default="1")
    p.add_argument("--align-epochs", default="2")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in args.strategies.split(","):
            run = Path(tmp) / strategy
            cmd = [sys.executable, "-m", "xmodal.cli", "--quiet", "fit", args.data, "--strategy", strategy, "--body",
                   args.body, "--epochs", args.epochs, "--align-epochs", args.align_epochs, "--out", str(run)]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            parts = {e.name: size(e) for e in sorted(run.iterdir())}
            rows.append((strategy, size(run), parts))
    print(f"data {args.data}, body {args.body}, {args.epochs} stage-3 epoch(s), {args.align_epochs} stage-2 epochs\n")
    print("| strategy | run folder (MB) | largest entries (MB) |")
    print("|---|---|---|")
    for strategy, total, parts in rows:
        top = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])[:4])
        print(f"| {strategy} | {total / 1e6:.1f} | {top} |")


if __name__ == "__main__":
    main()
