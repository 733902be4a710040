# The README's two commands: `make demo` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT := results/demo
THREADS ?= 2

.PHONY: demo test lint unit reliability bench ablation-contrastive ablation-emotion ablation-extensions ablation-augmentation ablation-batches clean

# Resemblyzer (the reports' external anchor) goes in without its declared deps: setup.cfg's
# `anchor` extra brings the ones it needs (webrtcvad-wheels in place of the source-only webrtcvad).
# No pip cache: the venv is about 6 GB already and a CI machine's disk can be nearly full.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-cache-dir --upgrade pip
	$(PY) -m pip install --quiet --no-cache-dir -e '.[test,onnx,anchor]'
	$(PY) -m pip install --quiet --no-cache-dir --no-deps resemblyzer==0.1.4
	touch $(STAMP)

# The baseline, both papers' systems and the recommended one on SynthEmo, the Resemblyzer anchor, the
# same runs scored on stronger emotions than any training utterance, the report and the
# validation-best model (recipes/SynthEmo/demo.yaml). Resumable; a finished demo only prints its
# summary again. ARGS="--jobs 1 --threads 2" changes the schedule.
demo: $(STAMP)
	$(PY) recipes/SynthEmo/demo.py --out $(DEMO_OUT) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/yamllint -s -c .yamllint.yaml recipes

test: $(STAMP) lint
	OMP_NUM_THREADS=$(THREADS) $(PY) -m pytest -q -m "not slow"

# Every reliability scenario (the slow ones too); regenerates results/reliability.md.
reliability: $(STAMP)
	OMP_NUM_THREADS=1 SX_RELIABILITY_TABLE=results/reliability.md $(PY) -m pytest -q tests/reliability

# Ablations on SynthEmo: the suites recipes/SynthEmo/ablation/{contrastive,emotion,extensions,augmentation,batches}.yaml (5 seeds
# per row); resumable, they share the baseline runs. ARGS passes options: --jobs N, --background,
# --dry-run, --report-only, --seeds, --rows, --variants ROW:key=value. See docs/ablations.md.
ablation-contrastive: $(STAMP)
	$(PY) recipes/SynthEmo/ablation/run.py contrastive $(ARGS)

ablation-emotion: $(STAMP)
	$(PY) recipes/SynthEmo/ablation/run.py emotion $(ARGS)

ablation-extensions: $(STAMP)
	$(PY) recipes/SynthEmo/ablation/run.py extensions $(ARGS)

ablation-augmentation: $(STAMP)
	$(PY) recipes/SynthEmo/ablation/run.py augmentation $(ARGS)

ablation-batches: $(STAMP)
	$(PY) recipes/SynthEmo/ablation/run.py batches $(ARGS)

clean:
	rm -rf results/demo results/SynthEmo
