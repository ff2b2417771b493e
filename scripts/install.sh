#!/usr/bin/env bash
# Create or update the project's virtual environment. Idempotent: pip skips
# what is already satisfied. Usage: scripts/install.sh [.venv]
set -euo pipefail
venv=${1:-.venv}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
python=${PYTHON:-python3}

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
constraints=(-c constraints.txt)

# torch first, from this machine's disk (see constraints.txt).
"${pip[@]}" install "${constraints[@]}" torch torchvision
# Lava's own dependencies (restated: the wheels are installed with --no-deps),
# then the rest of the toolchain, all under the same constraints.
"${pip[@]}" install "${constraints[@]}" \
    numpy scipy scikit-learn networkx asteval \
    h5py matplotlib ninja opencv-python-headless pillow unittest2 \
    norse nir nirtorch tonic snntorch typer rich \
    pytest pytest-timeout hypothesis
# lava-nc 0.10.0 / lava-dl 0.6.0 declare Python <3.11: install without their
# metadata checks (docs/lava-behaviours.md); slt_deploy.core.compat makes them import.
"${pip[@]}" install "${constraints[@]}" --no-deps --ignore-requires-python \
    lava-nc==0.10.0 lava-dl==0.6.0
"${pip[@]}" install "${constraints[@]}" --no-deps --no-build-isolation -e .
# Fail now, not in the first test, if a later install moved numpy to 2.x.
"$venv/bin/python" -c "import numpy, sys; sys.exit(numpy.__version__.startswith('1.') is False)"
