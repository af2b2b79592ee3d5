#!/usr/bin/env bash
# Install xmodal and its test tools into ./.venv (created if absent).
# torch goes first and pinned: 2.13.0 is the CPU wheel on the project's machines; an unpinned
# torch (asked for by another package) would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -d .venv ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[test,vision]"
# FNO's Darcy-flow sample data ship inside neuraloperator 0.3.0; its dependencies are not needed
# (xmodal reads the .pt files without importing the package).
python -m pip install -q --no-deps "neuraloperator==0.3.0"
# Data files of Debian packages (Fashion-MNIST, mlbench's splice set, Weka's credit-g/diabetes), fetched
# without root into ${XMODAL_DATA:-~/.cache/xmodal/debian}; optional: the other datasets work without them.
if ! bash scripts/fetch_debian_data.sh; then
  echo "warning: could not fetch Debian's data packages; the datasets fashion-mnist, fashion-mnist-10k," \
    "splice, credit-g and diabetes will be unavailable (rerun scripts/fetch_debian_data.sh on a Debian/Ubuntu" \
    "system with apt, or apt-get install dataset-fashion-mnist r-cran-mlbench weka)" >&2
fi
echo "xmodal installed in $(pwd)/.venv — activate with: . .venv/bin/activate"
