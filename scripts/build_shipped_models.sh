#!/usr/bin/env bash
# Rebuild the small checkpoints shipped in models/ and their NIR graphs in export/:
# the digits MLP and CNN, trained with SLT-TET and with fixed-latency TET (T = 8,
# rate-encoded digits, seed 0, the recipes' settings), evaluated per latency and
# exported, and profiled (accuracy, SOP and energy per latency on the test split,
# priced with the paper's 77 fJ/SOP) so that the runtime controller can use the
# graphs directly. Deterministic: the same commands give the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
cli=.venv/bin/slt-deploy
for model in digits-mlp digits-cnn; do
  for method in slt fixed; do
    name="$model-$method"
    $cli train --model "$model" --method "$method" --loss tet --seed 0 -o "models/$name.pt"
    $cli eval "models/$name.pt" -o "models/$name.eval.json"
    $cli export "models/$name.pt" -o "export/$name.nir" --profile "models/$name.eval.json"
    $cli profile "export/$name.nir" --hardware qiao2015 -o "export/$name.profile.json"
  done
done
