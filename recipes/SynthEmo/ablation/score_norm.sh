#!/usr/bin/env bash
# Does score normalisation narrow the out-of-generator gap? AS-norm (methods.md; cohort: the training
# speakers) against raw cosine scores, on finished runs of one SynthEmo system, paired by seed, with
# speaker-bootstrap intervals. Nothing is trained: each run is copied twice and evaluated again by the
# recipe with its own selected checkpoint, once with --score_norm none and once with as-norm, on the
# validation speakers (valid, ood_valid: where a choice would be made) and on eval and ood (reported).
#
#   bash recipes/SynthEmo/ablation/score_norm.sh SYSTEM RUN [RUN...]
#
# SYSTEM names recipes/SynthEmo/hparams/SYSTEM.yaml; each RUN is a finished run folder of it (with
# seed<N> as its name). The runs' manifests are read from SCORE_NORM_ROOT (default results/ablation/SynthEmo,
# the suites' runs folder). Writes SCORE_NORM_REPORT (default results/score_norm_SYSTEM.md).
set -euo pipefail
cd "$(dirname "$0")/../../.."
python=.venv/bin/python
if [ $# -lt 2 ]; then echo "usage: $0 SYSTEM RUN [RUN...]" >&2; exit 2; fi
system=$1; shift
hparams=recipes/SynthEmo/hparams/$system.yaml
root=${SCORE_NORM_ROOT:-results/ablation/SynthEmo} out=${SCORE_NORM_OUT:-results/ablation/score_norm}
report=${SCORE_NORM_REPORT:-results/score_norm_$system.md}
[ -f "$hparams" ] || { echo "error: no system file $hparams" >&2; exit 2; }
manifests=$root/manifests
[ -f "$manifests/train.csv" ] || { echo "error: $manifests has no train.csv (prepare the corpus there first)" >&2; exit 2; }
splits="{" sep=""
for split in valid ood_valid eval ood; do
  splits+="$sep$split: {annotation: $manifests/$split.csv, trials: $manifests/trials/$split}" sep=", "
done
splits+="}"
declare -A scored
for run in "$@"; do
  seed=$(basename "$run")
  if [[ ! $seed =~ ^seed[0-9]+$ ]] || [ ! -f "$run/report/metrics.json" ]; then
    echo "error: '$run' is not a finished run folder named seed<N> (no report/metrics.json)" >&2
    exit 2
  fi
  for norm in none as-norm; do
    dest=$out/${system}_$norm/$seed
    if [ ! -f "$dest/report/metrics.json" ]; then
      rm -rf "$dest" && mkdir -p "$(dirname "$dest")" && cp -a "$run" "$dest" && rm -rf "$dest/report"
      OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$python" recipes/SynthEmo/train.py "$hparams" --seed "${seed#seed}" \
        --output_root "$root" --output_folder "$dest" --score_norm "$norm" --eval_splits "$splits" \
        > "$dest.log" 2>&1 || { tail -5 "$dest.log" >&2; exit 2; }
    fi
    scored[$norm]+="${scored[$norm]:+,}$dest"
  done
done
"$python" -m speechbrain_ext.compare --reference raw "raw=${scored[none]}" "as-norm=${scored[as-norm]}" \
  --split valid ood_valid eval ood --conditions all neutral_emotional --out "$report" \
  --title "AS-norm against raw cosine scores: $system, $# run(s)"
# The command that made the report, under its title (the compare command beside it names only the copies).
"$python" - "$report" "SCORE_NORM_ROOT=$root bash $0 $system $*" <<'PY'
import sys
path, command = sys.argv[1], sys.argv[2]
lines = open(path, encoding="utf-8").read().split("\n")
lines[1:1] = ["", f"Made by `{command}`: each run evaluated again with raw and with AS-norm scores, nothing trained."]
open(path, "w", encoding="utf-8").write("\n".join(lines))
PY
echo "report: $report"
