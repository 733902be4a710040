"""The one runner behind every ``recipes/*/train.py``.

``python recipes/<Corpus>/train.py <hparams.yaml> [--key value ...]`` composes the
hparams (``base:`` chain + overrides), prepares the data on the main process, builds
the Brain class the YAML names (``brain_class``), trains with SpeechBrain's ``fit``
(checkpoints, resume, DDP), then scores the evaluation trials with the best
checkpoint and writes the report. Every component is swappable from the YAML or the
command line; nothing here knows a corpus or a method.
"""

import logging
import os
import sys
import tempfile

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process, run_on_main

from speechbrain_ext import report, verification
from speechbrain_ext.hparams import load_hparams

logger = logging.getLogger(__name__)


def setup_experiment(hparams_file, hparams, composed):
    """Create the output folder, save the composed hparams there and start the log.

    Example
    -------
    >>> import contextlib, io, tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "exp")
    >>> with contextlib.redirect_stdout(io.StringIO()):  # SpeechBrain logs the start to stdout
    ...     setup_experiment("x.yaml", {"output_folder": out}, "a: 1\\n")
    >>> sorted(n for n in os.listdir(out) if n.endswith(".yaml"))
    ['hyperparams.yaml']
    """
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
        tmp.write(f"# composed from {hparams_file}\n{composed}")
    try:
        sb.create_experiment_directory(
            experiment_directory=hparams["output_folder"], hyperparams_to_save=tmp.name, save_env_desc=False
        )
    finally:
        os.remove(tmp.name)


def train(brain):
    """Fit ``brain`` on the datasets it builds from its hparams."""
    train_set, valid_set = brain.make_datasets()
    brain.fit(
        brain.hparams.epoch_counter,
        train_set,
        valid_set,
        train_loader_kwargs=brain.train_loader_options(train_set),
        valid_loader_kwargs=brain.valid_loader_options(),
    )


def main(argv=None):
    """Run a recipe: prepare, train, evaluate. ``argv`` defaults to ``sys.argv[1:]``."""
    argv = sys.argv[1:] if argv is None else argv
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams, composed = load_hparams(hparams_file, overrides)
    sb.utils.distributed.ddp_init_group(run_opts)
    run_on_main(setup_experiment, args=[hparams_file, hparams, composed])
    run_on_main(hparams["prepare_data"])
    brain = hparams["brain_class"](
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    train(brain)
    if if_main_process():
        command = " ".join(["python", os.path.relpath(sys.argv[0]) if sys.argv[0] else "train.py", *argv])
        metrics = verification.evaluate(
            brain,
            hparams["report_folder"],
            title=f"{hparams['system']} — {os.path.relpath(hparams_file)}",
            extra={"system": hparams["system"], "seed": hparams["seed"], "command": command},
        )
        print(report.format_metrics_table(metrics))
        print(f"report: {os.path.join(hparams['report_folder'], 'report.md')}")
    return brain
