"""Write a trained experiment as a SpeechBrain speaker-model folder, checked before it is moved into place.

The layout is that of SpeechBrain's own speaker models (as
``speechbrain/spkrec-ecapa-voxceleb``), loadable offline from any folder it is copied
to, or from the Hub once pushed::

    SpeakerRecognition.from_hparams(source=<folder or repo id>, savedir=<tmp>)

* ``hyperparams.yaml``: the inference hyperparameters
  (:mod:`~speechbrain_ext.publish.inference_yaml`);
* ``embedding_model.ckpt``, ``classifier.ckpt`` (state dicts of the chosen checkpoint,
  lowest validation EER unless ``checkpoint``), ``mean_var_norm.ckpt`` (global
  feature normalisation only) and ``mean_var_norm_emb.ckpt`` where used;
* ``label_encoder.txt`` (the training speakers) and ``label_encoder.ckpt``, the same
  file under the name the ``Pretrainer`` looks for;
* ``verification.json``: the decision threshold (the EER threshold of the validation
  trials the calibration was fitted on; :func:`~speechbrain_ext.publish.experiment.threshold_of`),
  read by ``python -m speechbrain_ext.verify``;
* ``calibration.json``: the run's score calibration (cosine → log-likelihood ratio), when
  the run wrote one next to its ``metrics.json``
  (:mod:`~speechbrain_ext.publish.calibration`); without one the model is uncalibrated;
* ``export.json``: provenance (system, seed, checkpoint, validation EER, epoch) and the marker that
  lets a later export replace this folder;
* ``README.md``: the model card (:mod:`~speechbrain_ext.publish.model_card`);
* with ``onnx``: ``embedding.onnx`` and ``embedding.torchscript.pt``, waveform →
  embedding, padding-invariant (:mod:`~speechbrain_ext.publish.onnx_export`), checked
  against the evaluation's extraction.

The folder is built in a temporary sibling directory, checked (strict state-dict load,
then a reload through ``EncoderClassifier.from_hparams`` whose embeddings must equal the
checkpoint's; no path or user name of this machine in any of its files, binary ones
included) and renamed into place.
"""

import datetime
import os
import shutil
import tempfile

import torch

from speechbrain_ext.batching import BatchingError
from speechbrain_ext.publish.calibration import find_calibration, read_calibration, verify_problem
from speechbrain_ext.publish.checkpoint import is_statistics, load_modules, read_label_encoder
from speechbrain_ext.publish.experiment import (
    class_paths,
    corpus_name,
    encoder_name,
    find_checkpoint,
    find_metrics,
    model_parts,
    plain,
    read_hparams,
    sanitize_command,
    threshold_of,
)
from speechbrain_ext.publish.inference_yaml import inference_yaml
from speechbrain_ext.publish.layout import (
    CALIBRATION,
    CARD,
    EXPORT_INFO,
    HPARAMS,
    MARKER,
    ONNX_FILE,
    PARITY_TOLERANCE,
    RELOAD_TOLERANCE,
    TORCHSCRIPT_FILE,
    VERIFICATION,
    PublishError,
    is_export,
    write_json,
)
from speechbrain_ext.publish.leaks import check_folder
from speechbrain_ext.publish.model_card import model_card

__all__ = ["export_model"]


def _check_out_dir(out_dir, experiment_dir, overwrite):
    """``out_dir`` may be written: outside the experiment, and empty or a previous export (or ``overwrite``)."""
    if os.path.commonpath([out_dir, experiment_dir]) in (out_dir, experiment_dir):
        raise PublishError(f"out_dir {out_dir} must not be the experiment folder, inside it, or contain it")
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise PublishError(f"{out_dir} exists and is not a folder")
        if os.listdir(out_dir) and not is_export(out_dir) and not overwrite:
            raise PublishError(
                f"{out_dir} is not empty and is not a previous export of {MARKER}: "
                "choose another folder or pass --overwrite to replace it"
            )


def _build_model(hp, experiment_dir, ckpt_path):
    """The inference YAML, its modules loaded from the checkpoint, and where each file comes from."""
    from hyperpyyaml import load_hyperpyyaml

    parts = model_parts(hp)
    text, loadables = inference_yaml(hp, parts, str(plain(hp.get("system", "speaker"))))
    try:
        inference = load_hyperpyyaml(text)
    except Exception as err:
        where = os.path.join(experiment_dir, HPARAMS)
        raise PublishError(f"the model blocks of {where} do not build: {type(err).__name__}: {err}") from err
    modules = {k: inference[k] for k in parts}
    sources = load_modules(hp, modules, loadables, ckpt_path)
    labels = read_label_encoder(experiment_dir, hp) if "classifier" in parts else None
    return {"text": text, "parts": parts, "modules": modules, "sources": sources, "labels": labels}


def _describe(hp, metrics, ckpt_path, parts):
    """What the card and ``export.json`` say of the run (``info``) and the warnings of the export."""
    cond, threshold, source = threshold_of(metrics)
    metrics_ckpt = metrics.get("checkpoint")
    mismatch = None
    on_validation = cond not in metrics["conditions"]  # "split/condition" of the calibration trials
    warnings = [] if on_validation else [f"the threshold is the {source}"]
    if metrics_ckpt and os.path.basename(str(metrics_ckpt)) != os.path.basename(ckpt_path):
        mismatch = (f"the metrics and the threshold were computed with checkpoint {os.path.basename(str(metrics_ckpt))}"
                    f", not with the exported {os.path.basename(ckpt_path)}")
        warnings.append(mismatch)
    others = sorted({c for k in parts for c in class_paths(hp[k]) if not c.startswith(("speechbrain.", "torch."))})
    if others:
        warnings.append(f"model blocks use classes outside SpeechBrain: {', '.join(others)}")
    info = {
        "system": str(plain(hp.get("system", "speaker"))),
        "corpus": corpus_name(hp, metrics),
        "threshold": threshold,
        "threshold_condition": cond,
        "threshold_source": source,
        "threshold_on_validation": on_validation,
        "command": sanitize_command(metrics["command"]) if metrics.get("command") else None,
        "metrics_checkpoint_mismatch": mismatch,
        "non_speechbrain_classes": others,
        "sample_rate": int(plain(hp.get("sample_rate", 16000))),
        "encoder": encoder_name(hp),
        "onnx": None,
    }
    return info, warnings


def _calibration(metrics_file, metrics, ckpt_path, calibration_path, warnings):
    """What the export carries of the run's calibration: ``{"calibration", "source", "problem", "fit", "reason"}``.

    A calibration fitted on another checkpoint's scores than the exported one's is not
    carried (its LLRs would be those of another model).
    """
    out = {"calibration": None, "source": None, "problem": None, "fit": metrics.get("calibration"), "reason": None}
    source = find_calibration(metrics_file, calibration_path)
    if source is None:
        out["reason"] = "the training run wrote no calibration.json next to its metrics.json"
        if isinstance(out["fit"], dict):
            warnings.append(f"{os.path.basename(metrics_file)} describes a calibration but there is no "
                            f"{CALIBRATION} next to it: exported uncalibrated")
        return out
    calibration = read_calibration(source)
    metrics_ckpt = metrics.get("checkpoint")
    if calibration_path is None and metrics_ckpt and os.path.basename(str(metrics_ckpt)) != os.path.basename(ckpt_path):
        out["reason"] = (f"the run's calibration was fitted on the scores of checkpoint "
                         f"{os.path.basename(str(metrics_ckpt))}, not of the exported one")
        warnings.append(f"{out['reason']}: exported uncalibrated")
        return out
    out.update(calibration=calibration, source=source, problem=verify_problem(calibration))
    if out["problem"]:
        warnings.append(f"{CALIBRATION} is exported but python -m speechbrain_ext.verify cannot apply it: "
                        f"{out['problem']}")
    return out


def _write_model_files(folder, model):
    """The inference YAML, the modules' checkpoint files and the label encoder."""
    with open(os.path.join(folder, HPARAMS), "w", encoding="utf-8") as f:
        f.write(model["text"])
    modules = model["modules"]
    for key, path in model["sources"].items():
        if is_statistics(modules[key]):
            shutil.copyfile(path, os.path.join(folder, f"{key}.ckpt"))
        else:
            torch.save(modules[key].state_dict(), os.path.join(folder, f"{key}.ckpt"))
    if model["labels"] is not None:
        for name in ("label_encoder.txt", "label_encoder.ckpt"):
            model["labels"].save(os.path.join(folder, name))


def _write_verification(folder, metrics, info):
    cond = info["threshold_condition"]
    if info["threshold_on_validation"]:
        eer, min_dcf, min_dcf_threshold = (metrics.get("calibration") or {}).get("eer"), None, None
    else:
        cond_metrics = metrics["conditions"][cond]
        eer, min_dcf, min_dcf_threshold = (cond_metrics.get(k) for k in ("eer", "min_dcf", "min_dcf_threshold"))
    write_json(os.path.join(folder, VERIFICATION), {
        "threshold": info["threshold"],
        "score": "cosine",
        "accept_if": "score >= threshold",
        "source": info["threshold_source"],
        "condition": cond,
        "eer": eer,
        "min_dcf": min_dcf,
        "min_dcf_threshold": min_dcf_threshold,
    })


def _reload_check(folder, modules, sample_rate):
    """Embeddings of the folder loaded through SpeechBrain equal those of ``modules``; the max |diff| and ``D``."""
    import logging

    from speechbrain.inference.classifiers import EncoderClassifier

    from speechbrain_ext.publish.onnx_export import example_batch, reference_embeddings

    level = logging.getLogger("speechbrain").level
    logging.getLogger("speechbrain").setLevel(logging.WARNING)
    try:
        model = EncoderClassifier.from_hparams(source=folder, savedir=None, run_opts={"device": "cpu"})
    except Exception as err:
        raise PublishError(f"the exported {HPARAMS} does not load with EncoderClassifier.from_hparams: {err}") from err
    finally:
        logging.getLogger("speechbrain").setLevel(level)
    wavs, lens = example_batch(sample_rate, seconds=(1.0, 0.6))
    with torch.no_grad():
        got = model.encode_batch(wavs, lens)[:, 0]
    want = reference_embeddings(modules["compute_features"], modules["mean_var_norm"], modules["embedding_model"],
                                wavs, lens)
    diff = float((got - want).abs().max())
    if not diff <= RELOAD_TOLERANCE:
        raise PublishError(f"the reloaded export differs from the checkpoint: max |diff| {diff:.3g} > "
                           f"{RELOAD_TOLERANCE}")
    return diff, int(got.shape[-1])


def _write_onnx(folder, modules, sample_rate):
    """``embedding.onnx`` and ``embedding.torchscript.pt``, parity-checked; the parity report."""
    try:
        import onnx as _onnx  # noqa: F401
        import onnxruntime as _ort  # noqa: F401
    except ImportError as err:
        raise PublishError(f"--onnx needs onnx and onnxruntime (pip install -e '.[onnx]'): {err}") from err
    from speechbrain_ext.publish import onnx_export

    args = (modules["compute_features"], modules["mean_var_norm"], modules["embedding_model"])
    try:
        onnx_export.export_onnx(*args, os.path.join(folder, ONNX_FILE), sample_rate=sample_rate)
        onnx_export.export_torchscript(*args, os.path.join(folder, TORCHSCRIPT_FILE), sample_rate=sample_rate)
        parity = onnx_export.parity_report(*args, torchscript=os.path.join(folder, TORCHSCRIPT_FILE),
                                           onnx=os.path.join(folder, ONNX_FILE), sample_rate=sample_rate)
    except BatchingError as err:
        raise PublishError(f"--onnx: {err}") from err
    for kind in ("onnx", "torchscript"):
        if not parity[kind]["max_abs_diff"] <= PARITY_TOLERANCE:
            raise PublishError(f"{kind} export differs from PyTorch: max |diff| "
                               f"{parity[kind]['max_abs_diff']:.3g} > {PARITY_TOLERANCE}")
    return parity


def _calibration_summary(cal):
    """``export.json``'s account of the calibration (None: uncalibrated)."""
    if cal["calibration"] is None:
        return {"file": None, "reason": cal["reason"]}
    c = cal["calibration"]
    return {"file": CALIBRATION, "score_kind": c.score_kind, "quality_names": list(c.quality_names),
            "p_target": c.p_target, "n_target": c.n_target, "n_nontarget": c.n_nontarget,
            "verify": "applies it" if not cal["problem"] else f"cannot apply it: {cal['problem']}"}


def _provenance(info, meta, ckpt_rel, metrics, reload_diff):
    return {
        "exported_by": MARKER,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "system": info["system"],
        "seed": metrics.get("seed"),
        "checkpoint": ckpt_rel,
        "valid_EER": meta.get("EER"),
        "epoch": meta.get("epoch"),
        "metrics_checkpoint": metrics.get("checkpoint"),
        "threshold": info["threshold"],
        "threshold_condition": info["threshold_condition"],
        "calibration": _calibration_summary(info["calibration"]),
        "encoder": info["encoder"],
        "reload_max_abs_diff": reload_diff,
        "parity": info["onnx"],
        "parity_tolerance": PARITY_TOLERANCE,
    }


def _write_card(folder, info, hp, metrics, meta, modules, repo_id):
    """The model card; returns the sizes of the other files (the card lists them)."""
    files = {n: os.path.getsize(os.path.join(folder, n)) for n in sorted(os.listdir(folder))}
    n_params = sum(p.numel() for p in modules["embedding_model"].parameters())
    with open(os.path.join(folder, CARD), "w", encoding="utf-8") as f:
        f.write(model_card(info, hp, metrics, meta, n_params, files, repo_id))
    return files


def _temp_folder(out_dir):
    """A new folder next to ``out_dir`` (same file system: the final rename is atomic), world-readable."""
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.tmp-")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the model folder is not
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _move_into_place(tmp, out_dir):
    """Rename ``tmp`` to ``out_dir``, replacing a previous folder there."""
    if os.path.exists(out_dir):
        old = tempfile.mkdtemp(dir=os.path.dirname(out_dir), prefix=f".{os.path.basename(out_dir)}.old-")
        os.rename(out_dir, os.path.join(old, "model"))
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


def export_model(experiment_dir, out_dir, checkpoint=None, onnx=False, overwrite=False, repo_id=None,
                 metrics_path=None, calibration_path=None):
    """Write a trained experiment as a SpeechBrain speaker model folder (see the module docstring).

    Arguments
    ---------
    experiment_dir : str
        The training output folder (``hyperparams.yaml``, ``save/CKPT+*``, ``report/metrics.json``).
    out_dir : str
        The model folder to write (replaced atomically if it is a previous export).
    checkpoint : str or None
        Checkpoint folder name (``CKPT+...``) or path; default: lowest validation EER.
    onnx : bool
        Also write ``embedding.onnx`` and ``embedding.torchscript.pt`` (parity-checked).
    overwrite : bool
        Replace a non-empty ``out_dir`` that is not a previous export.
    repo_id : str or None
        Hub repo id used in the card's usage snippet (default: a placeholder path).
    metrics_path : str or None
        The run's ``metrics.json`` if not in ``<exp>/report/`` or the report folder.
    calibration_path : str or None
        The run's ``calibration.json`` (default: the one next to ``metrics.json``, if any).

    Returns
    -------
    dict
        ``out_dir``, ``checkpoint``, ``valid_EER``, ``epoch``, ``metrics``, ``threshold``,
        ``threshold_condition``, ``calibration`` (the ``calibration.json`` carried, or None),
        ``files`` (name → bytes), ``reload_max_abs_diff``, ``onnx`` (parity report or None),
        ``warnings``.

    Example
    -------
    >>> export_model("/nonexistent/exp", "/tmp/never")
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: experiment folder not found: /nonexistent/exp
    """
    experiment_dir = os.path.abspath(os.fspath(experiment_dir))
    out_dir = os.path.abspath(os.fspath(out_dir))
    hp = read_hparams(experiment_dir)
    ckpt_path, meta = find_checkpoint(experiment_dir, checkpoint)
    _check_out_dir(out_dir, experiment_dir, overwrite)
    metrics_file, metrics = find_metrics(experiment_dir, hp, metrics_path)
    model = _build_model(hp, experiment_dir, ckpt_path)
    info, warnings = _describe(hp, metrics, ckpt_path, model["parts"])
    info["calibration"] = _calibration(metrics_file, metrics, ckpt_path, calibration_path, warnings)
    ckpt_rel = os.path.relpath(ckpt_path, experiment_dir).replace(os.sep, "/")
    tmp = _temp_folder(out_dir)
    try:
        _write_model_files(tmp, model)
        _write_verification(tmp, metrics, info)
        if info["calibration"]["calibration"] is not None:
            write_json(os.path.join(tmp, CALIBRATION), info["calibration"]["calibration"].to_dict())
        reload_diff, info["embedding_dim"] = _reload_check(tmp, model["modules"], info["sample_rate"])
        if onnx:
            info["onnx"] = _write_onnx(tmp, model["modules"], info["sample_rate"])
        write_json(os.path.join(tmp, EXPORT_INFO), _provenance(info, meta, ckpt_rel, metrics, reload_diff))
        files = _write_card(tmp, info, hp, metrics, meta, model["modules"], repo_id)
        check_folder(tmp, experiment_dir)
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files[CARD] = os.path.getsize(os.path.join(out_dir, CARD))
    return {
        "out_dir": out_dir,
        "checkpoint": ckpt_rel,
        "valid_EER": meta.get("EER"),
        "epoch": meta.get("epoch"),
        "metrics": metrics_file,
        "threshold": info["threshold"],
        "threshold_condition": info["threshold_condition"],
        "calibration": info["calibration"]["source"],
        "files": files,
        "reload_max_abs_diff": reload_diff,
        "onnx": info["onnx"],
        "warnings": warnings,
    }
