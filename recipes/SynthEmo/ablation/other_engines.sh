#!/usr/bin/env bash
# The other-engine check: exported models and Resemblyzer on voices that no eSpeak NG template made,
# 15 voices of Flite and Festival, each built from the recordings of one human speaker
# (data_prep/other_engines.py), with paired differences against the first system and speaker-bootstrap
# intervals. Nothing is trained, chosen or calibrated on these voices. Needs Debian's flite, festival and
# festvox-* packages (the preparation names the missing ones). Writes results/other_engines.md.
#
#   bash recipes/SynthEmo/ablation/other_engines.sh NAME=MODEL_DIR[,MODEL_DIR...] [NAME=...]
#
# A system with several models (e.g. one per seed) is compared as one system of several runs, paired by
# seed with the reference. Export a run first: python -m speechbrain_ext.publish export <run> <model_dir>.
set -euo pipefail
cd "$(dirname "$0")/../../.."
python=.venv/bin/python
data=${OTHER_ENGINES_DATA:-data/other_engines} out=${OTHER_ENGINES_OUT:-results/ablation/other_engines}
report=${OTHER_ENGINES_REPORT:-results/other_engines.md}
if [ $# -lt 1 ]; then echo "usage: $0 NAME=MODEL_DIR[,MODEL_DIR...] [NAME=...]" >&2; exit 2; fi
for pair in "$@"; do
  IFS=, read -ra models <<< "${pair#*=}"
  for model in "${models[@]}"; do
    if [ "${pair%%=*}" = "$pair" ] || [ ! -f "$model/hyperparams.yaml" ]; then
      echo "error: '$pair': not NAME=MODEL_DIR[,MODEL_DIR...] with exported models ($model has no hyperparams.yaml)" >&2
      exit 2
    fi
  done
done
"$python" -m data_prep.other_engines "$data"
mkdir -p "$out"
# The recipe's scoring settings with this set as its only split (raw cosine scores, no calibration).
args=(recipes/SynthEmo/hparams/ecapa_aam.yaml --data_folder "$data" --output_root "$out/recipe"
      --eval_splits "{eval: null, ood: null, other: {annotation: $data/other.csv, trials: $data/trials/other}}")
systems=()
for pair in "$@"; do
  name=${pair%%=*} scored=()
  IFS=, read -ra models <<< "${pair#*=}"
  for i in "${!models[@]}"; do
    "$python" -m speechbrain_ext.model_eval "$out/$name/$i" "${args[@]}" --model "${models[$i]}" \
      > "$out/$name.$i.log" 2>&1 || { tail -5 "$out/$name.$i.log" >&2; exit 2; }
    scored+=("$out/$name/$i")
  done
  systems+=("$name=$(IFS=,; echo "${scored[*]}")")
done
OMP_NUM_THREADS=1 "$python" -m speechbrain_ext.anchor "$out/resemblyzer" "${args[@]}" > "$out/resemblyzer.log" 2>&1 \
  || { tail -5 "$out/resemblyzer.log" >&2; exit 2; }
"$python" -m speechbrain_ext.compare --reference "${1%%=*}" "${systems[@]}" "resemblyzer=$out/resemblyzer" \
  --split other --conditions all --title "Other engines" --out "$out/compare.md" > /dev/null
{
  echo "# Other engines: 15 Flite and Festival voices of recorded human speakers"
  echo
  echo "Made by \`bash recipes/SynthEmo/ablation/other_engines.sh $*\` (data_prep/other_engines.py: every"
  echo "pair of utterances with different sentences; nothing trained, chosen or calibrated on these voices)."
  echo "Models (each export's system and seed):"
  echo
  for pair in "$@"; do
    IFS=, read -ra models <<< "${pair#*=}"
    for model in "${models[@]}"; do
      echo "- ${pair%%=*}: \`$model\` ($("$python" -c 'import json, sys; e = json.load(open(sys.argv[1]))
print(e["system"], "seed", e["seed"])' "$model/export.json" 2>/dev/null || echo "no export.json"))"
    done
  done
  echo
  sed '1d; s/^#/##/' "$out/compare.md"
} > "$report.tmp" && mv "$report.tmp" "$report"
echo "wrote $report"
