#!/usr/bin/env bash
# The paper's VGGSNN at its own scale, without a download: trained briefly on the
# generated 2x48x48 neuromorphic digits (`ndigits48`, T = 10 time bins) with
# SLT-TET (and, with METHODS="slt fixed", fixed-latency TET as the baseline),
# then profiled per latency (accuracy, SOP, energy at 77 fJ/SOP). The profile
# runs on the PyTorch counter (fast); the same SOP on the deployed Lava network
# (lava-fused) is checked on the first CHECK samples. The README's "VGGSNN
# energy at the paper's scale" compares the figures with the paper's
# DVS-Gesture numbers. About 1 h per trained method on 2 CPU cores.
#
#   bash scripts/vggsnn_energy.sh     # METHODS=slt EPOCHS=3 SAMPLES=360 CHECK=8 RUNS=runs/vggsnn-energy
set -euo pipefail
cd "$(dirname "$0")/.."
cli=.venv/bin/slt-deploy
runs=${RUNS:-runs/vggsnn-energy}
epochs=${EPOCHS:-3}
samples=${SAMPLES:-360}
check=${CHECK:-8}
methods=${METHODS:-slt}
mkdir -p "$runs"
profiles=()
for method in $methods; do
  name="$runs/vggsnn-$method"
  if [ ! -f "$name.pt" ]; then
    $cli train --model vggsnn --data ndigits48 --method "$method" --loss tet -T 10 \
      --epochs "$epochs" --seed 0 -o "$name.pt"
  fi
  [ -f "$name.nir" ] || $cli export "$name.pt" -o "$name.nir"
  $cli profile "$name.nir" --data ndigits48 --samples "$samples" --hardware qiao2015 --backend torch \
    -o "$name.profile.json" --nir-out "$name.profiled.nir"
  if [ "$check" -gt 0 ]; then
    for backend in torch lava-fused; do
      $cli profile "$name.nir" --data ndigits48 --samples "$check" --hardware qiao2015 --backend "$backend" \
        -o "$name.check-$backend.json" --nir-out "$name.check-$backend.nir"
    done
    .venv/bin/python - "$name.check-torch.json" "$name.check-lava-fused.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
same = a["sop"] == b["sop"]
print(f"SOP per latency, torch vs lava-fused on the first samples: {'identical' if same else 'DIFFERENT'}")
sys.exit(0 if same else 1)
PY
  fi
  profiles+=("$name.profile.json")
done
$cli report "${profiles[@]}" -o "$runs/report"
