#!/usr/bin/env bash
# What training on stronger emotions costs on the other corpus: a row's 5 runs trained on SynthEmo v2
# (results/ablation/SynthEmo, expressiveness 1.0) and its 5 runs trained on the expressiveness-2.4 corpus
# (results/ablation/SynthEmo_v3: `python recipes/SynthEmo/ablation/run.py contrastive --runs
# results/ablation/SynthEmo_v3 --set data_folder=data/SynthEmo_v3 "voice_space={expressiveness_mean: 2.4}"`),
# each scored on the OTHER corpus's eval and ood trials by `python -m speechbrain_ext.suite_rescore`
# (exported, nothing trained), then compared on each corpus's trials with the runs trained on it, paired
# by seed, with speaker-bootstrap intervals. The two corpora share speakers, sentences and neutral audio:
# only the emotional renditions differ, so `neutral_neutral` trials are the same audio in both.
# Writes results/cross_corpus_<ROW>.md.
#
#   bash recipes/SynthEmo/ablation/cross_corpus.sh [ROW]     (default ROW: ecapa_aam)
set -euo pipefail
cd "$(dirname "$0")/../../.."
row=${1:-ecapa_aam}
python=.venv/bin/python
suite=recipes/SynthEmo/ablation/contrastive.yaml
v2=results/ablation/SynthEmo v3=results/ablation/SynthEmo_v3
v2_on_v3=results/ablation/SynthEmo_on_expr2.4 v3_on_v2=results/ablation/SynthEmo_v3_on_v2
rows=(ecapa_aam)  # the suite's reference is always scored
if [ "$row" != ecapa_aam ]; then rows+=("$row"); fi
"$python" -m speechbrain_ext.suite_rescore "$suite" --rows "${rows[@]}" --out "$v2_on_v3" \
  --set data_folder=data/SynthEmo_expr2.4 "voice_space={expressiveness_mean: 2.4}"
"$python" -m speechbrain_ext.suite_rescore "$suite" --rows "${rows[@]}" --runs "$v3" --out "$v3_on_v2"
runs() { local IFS=,; local folders=("$1/$row"/seed*); echo "${folders[*]}"; }
out=results/cross_corpus_$row.md
{
  echo "# Training on SynthEmo v2 vs on the expressiveness-2.4 corpus, scored on both ($row, 5 seeds)"
  echo
  echo "Made by \`bash recipes/SynthEmo/ablation/cross_corpus.sh $row\`. Each part compares the runs trained"
  echo "on the other corpus with the runs trained on the corpus whose trials are scored (the reference);"
  echo "negative differences: the other corpus's runs make fewer errors."
  for part in "v2 $v2 $v3_on_v2/scores" "v3 $v3 $v2_on_v3/scores"; do
    read -r scored own cross <<< "$part"
    other=$([ "$scored" = v2 ] && echo v3 || echo v2)
    "$python" -m speechbrain_ext.compare --reference "trained_on_$scored" "trained_on_$scored=$(runs "$own")" \
      "trained_on_$other=$(runs "$cross")" --split eval ood --conditions all neutral_emotional neutral_neutral \
      --title "Scored on the $scored corpus's trials" --out "$cross/../${row}_vs_trained_on_$scored.md" > /dev/null
    echo
    sed 's/^#/##/' "$cross/../${row}_vs_trained_on_$scored.md"
  done
} > "$out"
echo "wrote $out"
