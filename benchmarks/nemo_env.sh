#!/usr/bin/env bash
# One virtual environment with NeMo 3.0 and minispeech, so that one Python process can
# import both and benchmarks/side_by_side.py can time them in the same run.
#
#   bash benchmarks/nemo_env.sh [VENV]     # default VENV: benchmarks/out/nemo-venv
#   VENV/bin/python benchmarks/side_by_side.py
#
# Order matters:
#   1) torch==2.13.0 first: the CPU wheel, from this machine's wheel folder if pip has one.
#   2) nemo_toolkit[asr]==3.0.0 with a constraints file that pins torch to the version just
#      installed, so the resolver can never swap it for a CUDA build or another release.
#   3) minispeech itself, editable and --no-deps (its deps are small and NeMo already brings
#      most of them), so the benchmark imports the working tree, not a copy.
# Environment: PYTHON (default python3, needs 3.10-3.12).
# Measured once (Python 3.11, 2 cores): 89 s, 2.2 GB. Everything came as
# wheels except antlr4-python3-runtime 4.9.3 (an sdist, pure Python: builds in seconds),
# so no workaround was needed; `pip check` finds no broken requirement. NeMo pulls
# lightning 2.4.0 and moves fsspec back a release; torch stays the pin.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$REPO/benchmarks/out/nemo-venv}"
PYTHON="${PYTHON:-python3}"
start=$(date +%s)

# 1) the venv and the torch pin
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install torch==2.13.0

# 2) NeMo, torch held where it is (== ignores the local label: 2.13.0 matches 2.13.0+cpu)
constraints="$VENV/torch-constraints.txt"
echo "torch==2.13.0" >"$constraints"
"$VENV/bin/python" -m pip install -c "$constraints" "nemo_toolkit[asr]==3.0.0"

# 3) minispeech, editable, plus its own small dependencies
"$VENV/bin/python" -m pip install -c "$constraints" --no-deps -e "$REPO"
"$VENV/bin/python" -m pip install -c "$constraints" numpy soundfile pyyaml sentencepiece tqdm

# Check: both import, and torch is still the pin.
"$VENV/bin/python" - <<'EOF'
import minispeech
import nemo
import nemo.collections.asr  # noqa: F401  (the heavy import: fails here if a dep is missing)
import nemo.collections.audio  # noqa: F401  (masking model: the asr extra is enough)
import nemo.collections.tts  # noqa: F401  (FastPitch, HiFi-GAN: the asr extra is enough)
import torch

print(f"torch {torch.__version__}, nemo {nemo.__version__}, minispeech {minispeech.__file__}")
assert torch.__version__.startswith("2.13.0"), torch.__version__
EOF
echo "done in $(($(date +%s) - start)) s; size $(du -sh "$VENV" | cut -f1)"
