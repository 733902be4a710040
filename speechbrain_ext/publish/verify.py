"""Verify two recordings with an exported model: cosine score, log-likelihood ratio, accept / reject.

::

    python -m speechbrain_ext.verify a.wav b.wav --model <model folder or Hub repo id>
                                     [--prior P | --threshold T] [--json]

(:mod:`speechbrain_ext.verify` is the entry point of this command.)

The model is a folder written by ``python -m speechbrain_ext.publish export`` (or any
SpeechBrain speaker model with a ``hyperparams.yaml``), or a Hub repo id, loaded with
``SpeakerRecognition.from_hparams``. Each file is embedded alone and the score is the
cosine of the two embeddings.

* A **calibrated** model (``calibration.json``, :mod:`~speechbrain_ext.publish.calibration`)
  turns the score into a log-likelihood ratio (natural log) with the quality measures it
  was fitted with, computed from the two files (their durations, the norms of their
  embeddings before length normalisation; ``a.wav`` is the enrolment side), and accepts
  when ``llr >= -log(p / (1 - p))``, the Bayes threshold at the prior ``p`` of a
  same-speaker trial (``--prior``, default :data:`~speechbrain_ext.publish.layout.DEFAULT_PRIOR`
  = 0.01, the operating point of the card's DCFs). A calibration ``verify`` cannot apply
  (fitted on AS-norm scores, or with a measure it cannot compute from two files) is an
  error naming the cause, not a wrong LLR.
* An **uncalibrated** model decides on the score at the card's threshold
  (``verification.json``, the EER threshold of the training run's evaluation trials).

``--threshold`` decides on the cosine score instead, calibrated or not.
Exit status: 0 after a decision (accept or reject), 2 on an error (unreadable wav,
missing model files, a calibration verify cannot apply), whose message names the file,
folder or measure.
"""

import argparse
import json
import os
import re
import sys

import torch

from speechbrain_ext.calibration_metrics import bayes_threshold
from speechbrain_ext.publish.calibration import model_calibration, pair_llr, verify_problem
from speechbrain_ext.publish.layout import CALIBRATION, DEFAULT_PRIOR, HPARAMS, PublishError, read_threshold

__all__ = ["VerifyError", "load_model", "main", "read_audio", "verify_files"]


class VerifyError(PublishError):
    """Verification cannot run; the message names the wav or the model folder.

    Example
    -------
    >>> str(VerifyError("cannot read wav 'x.wav'"))
    "cannot read wav 'x.wav'"
    """


def _looks_like_repo_id(text):
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text)) and not text.startswith((".", "/", "~"))


def _describe_source(model):
    """``"model folder ..."`` or ``"Hub repo ..."``; an error for a folder that is not a model."""
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, HPARAMS)):
            raise VerifyError(f"model folder {model} has no {HPARAMS} (expected an export of speechbrain_ext.publish)")
        return f"model folder {model}"
    if _looks_like_repo_id(model) and not os.path.exists(model):
        return f"Hub repo {model}"
    raise VerifyError(f"model folder not found: {model}")


def load_model(model, savedir=None, device="cpu"):
    """``SpeakerRecognition`` from a local model folder or a Hub repo id.

    Arguments
    ---------
    model : str
        A folder with ``hyperparams.yaml`` (and the ``*.ckpt`` files), or ``user/name``.
    savedir : str or None
        Where SpeechBrain links the files (default: none for a folder, the Hugging Face
        cache for a repo).
    device : str
        ``"cpu"`` or ``"cuda"``...

    Returns
    -------
    speechbrain.inference.speaker.SpeakerRecognition

    Example
    -------
    >>> import tempfile
    >>> load_model(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.verify.VerifyError: model folder ... has no hyperparams.yaml (expected an export of ...)
    """
    from speechbrain.inference.speaker import SpeakerRecognition

    model = os.fspath(model)
    where = _describe_source(model)
    try:
        return SpeakerRecognition.from_hparams(source=model, savedir=savedir, run_opts={"device": device})
    except Exception as err:
        raise VerifyError(f"cannot load the {where}: {type(err).__name__}: {err}") from err


def read_audio(path, model):
    """Waveform ``[samples]`` of ``path`` at the model's rate (resampled / down-mixed by its normaliser).

    Example
    -------
    >>> read_audio("/nonexistent.wav", None)
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.verify.VerifyError: cannot read wav '/nonexistent.wav': no such file
    """
    from speechbrain.dataio import audio_io

    if not os.path.isfile(path):
        raise VerifyError(f"cannot read wav {path!r}: no such file")
    try:
        signal, rate = audio_io.load(str(path), channels_first=False)
    except Exception as err:
        raise VerifyError(f"cannot read wav {path!r}: {type(err).__name__}: {err}") from err
    if signal.numel() == 0:
        raise VerifyError(f"cannot read wav {path!r}: it holds no samples")
    signal = model.audio_normalizer(signal, rate)
    if not torch.isfinite(signal).all():
        raise VerifyError(f"cannot use wav {path!r}: it contains NaN or infinite samples")
    return signal


def _decision_rule(source, threshold, prior):
    """``(calibration or None, threshold, threshold source, prior or None)``, checked before any audio is read."""
    if threshold is not None and prior is not None:
        raise VerifyError("give --prior (a decision on the calibrated LLR) or --threshold (on the cosine score), "
                          "not both")
    if prior is not None and not 0.0 < prior < 1.0:
        raise VerifyError(f"--prior must be a probability strictly between 0 and 1, got {prior}")
    path, calibration = model_calibration(source) if source is not None else (None, None)
    if threshold is not None:  # the LLR is still shown when it can be computed
        usable = calibration if calibration is not None and not verify_problem(calibration) else None
        return usable, float(threshold), "--threshold", None
    if calibration is not None:
        problem = verify_problem(calibration)
        if problem:
            raise VerifyError(f"{path} cannot be applied: {problem}; pass --threshold to decide on the cosine score")
        prior = DEFAULT_PRIOR if prior is None else float(prior)
        return calibration, bayes_threshold(prior), f"Bayes threshold of the LLR at prior {prior:g}", prior
    where = f"model {os.fspath(source)}" if source is not None else "the model"
    if prior is not None:
        raise VerifyError(f"--prior needs a calibrated model, but {where} has no {CALIBRATION}: its scores are not "
                          "log-likelihood ratios; decide at its verification.json threshold or pass --threshold")
    value = read_threshold(os.fspath(source)) if source is not None else None
    if value is None:
        raise VerifyError(f"{where} has no verification.json with a threshold: pass --threshold")
    return None, float(value), "verification.json", None


def _embed(model, wav):
    """The embedding ``[1, 1, D]`` of one waveform, alone, before length normalisation."""
    with torch.no_grad():
        return model.encode_batch(wav.unsqueeze(0), normalize=False)


def verify_files(wav_a, wav_b, model, threshold=None, savedir=None, prior=None):
    """Score two recordings; the LLR of a calibrated model; decide.

    Arguments
    ---------
    wav_a, wav_b : str
        Audio files (any format SpeechBrain reads); ``wav_a`` is the enrolment side.
    model : str or SpeakerRecognition
        Model folder, Hub repo id, or an already loaded model (then uncalibrated:
        ``threshold`` is needed).
    threshold : float or None
        Decide on the cosine score at this threshold (default: the calibrated LLR at
        ``prior``, else the model's ``verification.json`` threshold).
    savedir : str or None
        Passed to :func:`load_model`.
    prior : float or None
        Prior of a same-speaker trial for the decision on a calibrated model's LLR
        (default :data:`~speechbrain_ext.publish.layout.DEFAULT_PRIOR`).

    Returns
    -------
    dict
        ``score`` (cosine), ``llr`` (None when uncalibrated), ``quality`` (the measures
        the LLR used), ``prior``, ``threshold``, ``threshold_source``, ``decided_on``
        (``"llr"`` or ``"score"``), ``accept`` (bool).

    Example
    -------
    >>> verify_files("/nonexistent/a.wav", "b.wav", "/nonexistent/model")
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.verify.VerifyError: cannot read wav '/nonexistent/a.wav': no such file
    """
    for path in (wav_a, wav_b):  # before the (slow) model load
        if not os.path.isfile(path):
            raise VerifyError(f"cannot read wav {path!r}: no such file")
    source = model if isinstance(model, str | os.PathLike) else None
    if source is not None:
        _describe_source(os.fspath(source))
    calibration, threshold, threshold_source, prior = _decision_rule(source, threshold, prior)
    if source is not None:
        model = load_model(source, savedir=savedir)
    wavs = [read_audio(path, model) for path in (wav_a, wav_b)]
    try:
        embeddings = [_embed(model, wav) for wav in wavs]
    except RuntimeError as err:
        raise VerifyError(f"cannot score {wav_a!r} against {wav_b!r} (too short?): {err}") from err
    score = float(model.similarity(*embeddings).reshape(-1)[0])
    result = {"score": score, "llr": None, "quality": {}, "prior": prior, "threshold": threshold,
              "threshold_source": threshold_source, "decided_on": "score"}
    if calibration is not None:
        rate = float(model.audio_normalizer.sample_rate)
        durations = [wav.shape[0] / rate for wav in wavs]
        norms = [float(torch.linalg.vector_norm(e.double())) for e in embeddings]
        result["llr"], result["quality"] = pair_llr(calibration, score, durations, norms)
        if prior is not None:
            result["decided_on"] = "llr"
    value = result["llr"] if result["decided_on"] == "llr" else score
    result["accept"] = bool(value >= threshold)
    return result


def _print(result):
    decision = "accept (same speaker)" if result["accept"] else "reject (different speakers)"
    print(f"score: {result['score']:.4f} (cosine)")
    if result["llr"] is not None:
        measures = ", ".join(f"{k}={v:.3f}" for k, v in result["quality"].items())
        print(f"llr: {result['llr']:.4f} (natural log, {CALIBRATION}" + (f"; {measures}" if measures else "") + ")")
    print(f"threshold: {result['threshold']:.4f} ({result['threshold_source']})")
    print(f"decision: {decision}")


def main(argv=None):
    """Command line entry point; returns the exit status (0 after a decision, 2 on an error).

    Example
    -------
    >>> main(["a.wav", "b.wav", "--model", "/nonexistent/model"])  # the message goes to stderr
    2
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.verify",
        description="Speaker verification of two recordings with an exported model: cosine score, log-likelihood "
                    "ratio (calibrated models), accept/reject.",
    )
    parser.add_argument("wav_a", help="enrolment recording")
    parser.add_argument("wav_b", help="test recording")
    parser.add_argument("--model", required=True, help="model folder (publish export) or Hugging Face repo id")
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument("--prior", type=float,
                      help="prior probability that the two recordings are of the same speaker; a calibrated model "
                           f"accepts when LLR >= -log(p/(1-p)) (default {DEFAULT_PRIOR:g}: LLR >= "
                           f"{bayes_threshold(DEFAULT_PRIOR):.2f}; 0.5: LLR >= 0)")
    rule.add_argument("--threshold", type=float,
                      help="decide on the cosine score at this threshold (default: the calibrated LLR at the prior, "
                           "else the model's verification.json)")
    parser.add_argument("--savedir", help="where SpeechBrain links the model files")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        result = verify_files(args.wav_a, args.wav_b, args.model, threshold=args.threshold, savedir=args.savedir,
                              prior=args.prior)
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0
