"""How long the command line takes to answer, and what it imports, for commands that need no model.

Each command runs in a fresh interpreter (as the ``xmodal`` console script does), ``--repeats``
times; the table gives the median wall time, the number of modules imported and whether torch,
transformers or Optuna were among them. ``--src`` measures another checkout's ``src`` folder (e.g. a
``git worktree`` of an older commit) with this interpreter, for a before/after table.

    python benchmarks/cli_startup.py
    git worktree add /tmp/before dd70f50 && python benchmarks/cli_startup.py --src /tmp/before/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [["--help"], ["strategies"], ["fit", "missing.npz"], ["fit", "gunpoint", "--seed", "-1"],
            ["predict", "no-model", "x.npy"]]

PROBE = """
import sys
from xmodal.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code
import json
heavy = [m for m in ("torch", "transformers", "optuna") if m in sys.modules]
print("PROBE" + json.dumps({"rc": rc, "modules": len(sys.modules), "heavy": heavy}), file=sys.stderr)
"""


def measure(argv: list[str], src: str | None, repeats: int, cwd: Path) -> dict:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    walls, probe = [], {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, cwd=cwd)
        walls.append(time.perf_counter() - t0)
        line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("PROBE"))
        probe = json.loads(line[5:])
    return {"command": "xmodal " + " ".join(argv), "wall_s": statistics.median(walls), **probe}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", help="the src folder of another checkout to measure (default: the installed xmodal)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(c, args.src, args.repeats, Path(tmp)) for c in COMMANDS]
    print(f"source: {args.src or 'installed xmodal'}; median of {args.repeats} runs; {os.cpu_count()} CPUs\n")
    print("| command | exit | wall (s) | modules imported | heavy imports |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r['command']}` | {r['rc']} | {r['wall_s']:.2f} | {r['modules']} | {', '.join(r['heavy']) or '—'} |")


if __name__ == "__main__":
    main()
