"""The one runner behind every ``recipes/*/train.py``.

``python recipes/<Corpus>/train.py <hparams.yaml> [--key value ...]`` composes the
hparams (``base:`` chain + overrides), prepares the data on the main process, builds
the Brain class the YAML names (``brain_class``), trains with SpeechBrain's ``fit``
(checkpoints, resume, DDP), then scores every evaluation split with the selected
checkpoint (:mod:`speechbrain_ext.selection`) and writes the report
(:func:`speechbrain_ext.evaluation.evaluate`). Every component is swappable from the
YAML or the command line; nothing here knows a corpus or a method.

The splits (``eval_splits``, ``valid_splits``, ``checkpoint_selection``:
:mod:`speechbrain_ext.splits`) and the calibration settings are checked right after
data preparation: a missing manifest or trial folder stops the run, naming the split
and the path, before any epoch is trained.

Before anything is written, an output folder that already holds checkpoints is
checked against ``config_fingerprint.json`` (the composed hparams of the run that
made them, minus :data:`BENIGN_KEYS`): resuming with a different configuration is
refused, naming the differing keys, unless ``--allow_config_change True``.
Expected failures (bad hparams, manifests, checkpoints that cannot be written,
an aborted training) end the program with one ``error: ...`` line, no traceback.
"""

import dataclasses
import glob
import io
import json
import logging
import os
import sys
import tempfile

import ruamel.yaml
import speechbrain as sb
from speechbrain.utils.distributed import if_main_process, run_on_main

from speechbrain_ext import evaluation, report, selection, split_metrics, splits
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.files import atomic_write
from speechbrain_ext.hparams import EVALUATION_KEYS, HparamsError, load_hparams

logger = logging.getLogger(__name__)

FINGERPRINT = "config_fingerprint.json"
#: Keys that may change between a run and its resumption: how long to train, where
#: things go, how often to checkpoint, and evaluation-only settings. The validation
#: splits and ``checkpoint_selection`` are not among them: they decide the checkpoints kept.
BENIGN_KEYS = EVALUATION_KEYS | frozenset({
    "number_of_epochs", "num_workers", "ckpt_interval_minutes", "keep_checkpoints", "max_skipped_share",
    "allow_config_change", "output_root", "output_folder", "save_folder", "report_folder", "train_log",
})


class EvaluationError(SpeechBrainExtError, RuntimeError):
    """Scoring the evaluation trials failed (the message names the trial file, line and id).

    Example
    -------
    >>> str(EvaluationError("evaluation failed: all.txt:3: test id 'x' has no embedding"))
    "evaluation failed: all.txt:3: test id 'x' has no embedding"
    """


class ConfigChangeError(HparamsError):
    """An output folder holds checkpoints of a different configuration.

    Example
    -------
    >>> str(ConfigChangeError("exp: lr differs"))
    'exp: lr differs'
    """


def config_fingerprint(composed):
    """``{top-level key: its YAML text}`` of the composed hparams, without :data:`BENIGN_KEYS`.

    References stay unresolved, so changing ``number_of_epochs`` changes only that key
    even though other keys refer to it.

    Example
    -------
    >>> config_fingerprint("lr: 0.1\\nnumber_of_epochs: 3\\nopt: !ref <lr>\\n")
    {'lr': '0.1', 'opt': '!ref <lr>'}
    """
    yaml = ruamel.yaml.YAML()
    node = yaml.load(composed) or {}
    out = {}
    for key, value in node.items():
        if key in BENIGN_KEYS:
            continue
        stream = io.StringIO()
        yaml.dump({"v": value}, stream)
        text = stream.getvalue()[len("v:"):].strip()
        out[str(key)] = text
    return out


def _short(text, limit=60):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_config_change(output_folder, save_folder, composed, allow=False):
    """Refuse to resume checkpoints of another configuration; record this run's fingerprint.

    Arguments
    ---------
    output_folder : str
        The experiment folder (holds ``config_fingerprint.json``).
    save_folder : str
        The checkpoint folder.
    composed : str
        The composed hparams text (overrides applied, references unresolved).
    allow : bool
        Continue anyway (``--allow_config_change True``); the differences are logged.

    Returns
    -------
    list of str
        The differing keys (empty when none, or when there is no checkpoint yet).

    Example
    -------
    >>> import tempfile
    >>> out = tempfile.mkdtemp(); save = os.path.join(out, "save")
    >>> check_config_change(out, save, "lr: 1\\n")
    []
    >>> os.makedirs(os.path.join(save, "CKPT+1")); _ = open(os.path.join(save, "CKPT+1", "CKPT.yaml"), "w").write("")
    >>> check_config_change(out, save, "lr: 2\\nnumber_of_epochs: 9\\n")
    Traceback (most recent call last):
    ...
    speechbrain_ext.recipe.ConfigChangeError: ... holds checkpoints of another configuration: lr (1 -> 2); ...
    >>> check_config_change(out, save, "lr: 2\\n", allow=True)
    ['lr']
    >>> check_config_change(out, save, "lr: 2\\nmargin_scheduler: null\\n")  # a new key set to null: no change
    []
    """
    path = os.path.join(output_folder, FINGERPRINT)
    current = config_fingerprint(composed)
    has_checkpoints = bool(glob.glob(os.path.join(glob.escape(save_folder), "CKPT+*", "CKPT.yaml")))
    differing = []
    if has_checkpoints and os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            previous = json.load(f).get("hparams", {})
        # A key added since (absent before) with the value null switches nothing on: not a change.
        differing = sorted(
            k for k in set(previous) | set(current)
            if previous.get(k) != current.get(k) and not (k not in previous and current[k] in ("null", "~", ""))
        )
        if differing:
            described = ", ".join(
                f"{k} ({_short(previous.get(k, '<absent>'))} -> {_short(current.get(k, '<absent>'))})"
                for k in differing
            )
            if not allow:
                raise ConfigChangeError(
                    f"output folder {output_folder} holds checkpoints of another configuration: {described}; "
                    "use another output folder (e.g. --output_root), restore those values, or resume anyway "
                    "with --allow_config_change True"
                )
            logger.warning("resuming %s with a changed configuration (allow_config_change): %s",
                           output_folder, described)
    if if_main_process():
        with atomic_write(path) as f:
            json.dump({"format": 1, "hparams": current}, f, indent=1, sort_keys=True)
    return differing


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
        valid_loader_kwargs=brain.validation_loader_options(),
    )


def check_evaluation_settings(hparams):
    """Check the splits and the calibration settings before training (names the key, split and path).

    Returns
    -------
    eval_splits, valid_splits, calibration_splits : list of speechbrain_ext.splits.Split
    """
    eval_splits, valid_splits = splits.check_splits(hparams)
    if "calibration_splits" not in hparams:
        raise splits.SplitError("the hparams have no 'calibration_splits' (a list of valid split names; null: the "
                                "first valid split)")
    calibration = splits.calibration_splits(hparams["calibration_splits"], valid_splits)
    split_metrics.check_calibration(
        hparams["calibration_quality"], hparams["calibration_p_target"], hparams["score_norm"] == "as-norm"
    )
    return eval_splits, valid_splits, calibration


def evaluate_best_checkpoint(brain, hparams, title, extra):
    """Score every evaluation split with the selected checkpoint and write the report.

    The checkpoint is the one :func:`speechbrain_ext.selection.rank` puts first (lowest
    selection EER, ties to the later epoch), the same rule the Brain kept checkpoints
    by. Gathers what :func:`speechbrain_ext.evaluation.evaluate` needs: the Brain's
    encoder and loader factory (:meth:`~speechbrain_ext.brains.SpeakerBrain.inference_functions`)
    after recovering the checkpoint, and the evaluation keys of the hparams; the
    calibration is fitted on the trials of the ``calibration_splits`` (valid splits), pooled.

    Returns
    -------
    dict
        The metrics per split and condition.
    """
    eval_splits, _, calibration_splits = check_evaluation_settings(hparams)
    checkpoint = selection.recover_best(brain.checkpointer)
    if checkpoint is None:
        raise FileNotFoundError(f"no checkpoint in {brain.checkpointer.checkpoints_dir}: train first")
    output = hparams["output_folder"]
    info = {
        "checkpoint": os.path.relpath(checkpoint.path, output),
        "epoch": checkpoint.meta.get("epoch"),
        "valid_EER": checkpoint.meta.get("EER"),
        "valid": checkpoint.meta.get("valid"),
        "selection": checkpoint.meta.get("selection", hparams["checkpoint_selection"]),
        "score_norm": hparams["score_norm"],
        **extra,
    }
    encode, make_loader = brain.inference_functions()
    return evaluation.evaluate(
        encode, make_loader, eval_splits, hparams["data_folder"], hparams["report_folder"],
        sample_rate=hparams["sample_rate"], cache_dir=os.path.join(output, "embeddings"),
        checkpoint_path=checkpoint.path, calibration_splits=calibration_splits,
        calibration_quality=hparams["calibration_quality"], calibration_p_target=hparams["calibration_p_target"],
        cohort_manifest=hparams["train_annotation"], score_norm_kind=hparams["score_norm"],
        subtract_mean=bool(hparams["score_norm_subtract_mean"]),
        cohort_per_speaker=hparams["cohort_utterances_per_speaker"], cohort_seed=hparams["seed"],
        top_n=hparams["cohort_top_n"], n_draws=hparams["bootstrap_draws"], title=title, extra=info,
    )


def _step_interval_only(run_opts):
    """``--ckpt_interval_steps N`` on the command line replaces the YAML's ``ckpt_interval_minutes``.

    SpeechBrain refuses both at once; a step interval asked for explicitly wins.
    """
    overridden = getattr(run_opts, "overridden_args", None)
    if overridden is None or "ckpt_interval_steps" not in overridden or "ckpt_interval_minutes" in overridden:
        return run_opts
    if (run_opts.ckpt_interval_steps or 0) <= 0:
        return run_opts
    logger.info("checkpointing every %d steps (ckpt_interval_minutes disabled)", run_opts.ckpt_interval_steps)
    return dataclasses.replace(
        run_opts, ckpt_interval_minutes=0, overridden_args={*overridden, "ckpt_interval_minutes"}
    )


def main(argv=None):
    """Run a recipe: prepare, train, evaluate. ``argv`` defaults to ``sys.argv[1:]``.

    Expected failures (a :class:`~speechbrain_ext.errors.SpeechBrainExtError`) exit with
    status 1 and one ``error: ...`` line naming the key, file or step.
    """
    try:
        return _main(argv)
    except SpeechBrainExtError as err:
        logger.error("%s: %s", type(err).__name__, err)
        raise SystemExit(f"error: {err}") from err


_EQUALS = "\u2063EQ\u2063"  # stands in for "=" while SpeechBrain parses (invisible separators: never typed)


def parse_arguments(argv):
    """``sb.parse_arguments`` that keeps ``=`` inside values.

    SpeechBrain joins the overrides with ``=`` and splits them again, so a value holding
    ``=`` (``--output_folder runs/lr=0.1``) would silently become ``runs/lr 0.1``. Here
    each ``=`` inside a value is hidden from that round trip and restored afterwards;
    ``--key=value`` keeps working.

    Example
    -------
    >>> _, _, overrides = parse_arguments(["h.yaml", "--output_folder", "runs/lr=0.1", "--seed=3", "--tag=b=c"])
    >>> overrides.splitlines()
    ['output_folder: runs/lr=0.1', 'seed: 3', 'tag: b=c']
    """
    hidden = []
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            key, _, value = arg.partition("=")
            hidden.append(f"{key}={value.replace('=', _EQUALS)}")
        else:
            hidden.append(arg.replace("=", _EQUALS))
    hparams_file, run_opts, overrides = sb.parse_arguments(hidden)
    return hparams_file, run_opts, overrides.replace(_EQUALS, "=")


def _main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    hparams_file, run_opts, overrides = parse_arguments(argv)
    hparams, composed = load_hparams(hparams_file, overrides)
    run_opts = _step_interval_only(run_opts)
    sb.utils.distributed.ddp_init_group(run_opts)
    run_on_main(
        check_config_change,
        args=[hparams["output_folder"], hparams["save_folder"], composed, bool(hparams.get("allow_config_change"))],
    )
    run_on_main(setup_experiment, args=[hparams_file, hparams, composed])
    run_on_main(hparams["prepare_data"])
    check_evaluation_settings(hparams)
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
        try:
            metrics = evaluate_best_checkpoint(
                brain,
                hparams,
                title=f"{hparams['system']} — {os.path.relpath(hparams_file)}",
                extra={"system": hparams["system"], "seed": hparams["seed"], "command": command},
            )
        except (ValueError, FileNotFoundError) as err:  # trial lists, embeddings, scores
            raise EvaluationError(
                f"evaluation failed: {err}; training is finished and its checkpoints are kept in "
                f"{hparams['save_folder']}: fix the evaluation data and run the same command again"
            ) from err
        print(report.format_splits(metrics))
        print(f"report: {os.path.join(hparams['report_folder'], 'report.md')}")
    return brain
