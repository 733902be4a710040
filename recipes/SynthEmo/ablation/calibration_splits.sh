#!/usr/bin/env bash
# Calibration fitted on valid alone (the recipe's default) vs on valid + ood_valid pooled, on the same
# finished runs: each baseline run of `make ablation-extensions` / `make ablation-emotion` (seeds
# 1986-1990) is copied and re-evaluated with --calibration_splits "[valid, ood_valid]" (its checkpoints
# and embedding caches are reused: only the calibration changes), then the calibrated LLRs of both
# are compared with speaker-bootstrap intervals, paired by seed. Writes results/calibration_splits.md.
#
#   bash recipes/SynthEmo/ablation/calibration_splits.sh [ROW]     (default ROW: ecapa_aam)
set -euo pipefail
cd "$(dirname "$0")/../../.."
row=${1:-ecapa_aam}
runs=results/ablation/SynthEmo
pooled=results/ablation/SynthEmo_calibration_pooled
python=.venv/bin/python
valid=() both=()
for seed in 1986 1987 1988 1989 1990; do
  source_run="$runs/$row/seed$seed"
  test -f "$source_run/report/metrics.json" || { echo "error: $source_run is not a finished run" >&2; exit 1; }
  copy="$pooled/$row/seed$seed"
  if [ ! -f "$copy/report/metrics.json" ] || ! grep -q '"valid+ood_valid"' "$copy/report/metrics.json"; then
    rm -rf "$copy" && mkdir -p "$(dirname "$copy")" && cp -a "$source_run" "$copy"
    OMP_NUM_THREADS=1 "$python" recipes/SynthEmo/train.py "recipes/SynthEmo/hparams/$row.yaml" \
      --data_folder data/SynthEmo --seed "$seed" --output_root "$runs" --output_folder "$copy" \
      --calibration_splits "[valid, ood_valid]" > "$copy.log" 2>&1 || { echo "error: see $copy.log" >&2; exit 1; }
  fi
  valid+=("$source_run") both+=("$copy")
done
join() { local IFS=,; echo "$*"; }
"$python" -m speechbrain_ext.compare --reference valid "valid=$(join "${valid[@]}")" \
  "valid+ood_valid=$(join "${both[@]}")" --split eval ood --llr calibrated --conditions all neutral_emotional \
  --title "Calibration fitted on valid vs valid + ood_valid ($row, 5 seeds)" --out results/calibration_splits.md \
  --json "$pooled/calibration_splits.json"
sed -i "3i Made by \`bash recipes/SynthEmo/ablation/calibration_splits.sh $row\` (copies in $pooled).\n" \
  results/calibration_splits.md
