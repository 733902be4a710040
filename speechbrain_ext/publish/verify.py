"""Verify two recordings with an exported model: cosine score and accept / reject.

::

    python -m speechbrain_ext.verify a.wav b.wav --model <model folder or Hub repo id> [--threshold T] [--json]

(:mod:`speechbrain_ext.verify` is the entry point of this command.)

The model is a folder written by ``python -m speechbrain_ext.publish export`` (or any
SpeechBrain speaker model with a ``hyperparams.yaml``), or a Hub repo id, loaded with
``SpeakerRecognition.from_hparams``. The decision uses the model card's threshold
(``verification.json``, the EER threshold of the training run's evaluation trials)
unless ``--threshold`` is given: accept when ``score >= threshold``.
Exit status: 0 after a decision (accept or reject), 2 on an error (unreadable wav,
missing model files), whose message names the file or folder.
"""

import argparse
import json
import os
import re
import sys

import torch

from speechbrain_ext.publish.layout import HPARAMS, PublishError, read_threshold

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
    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, HPARAMS)):
            raise VerifyError(f"model folder {model} has no {HPARAMS} (expected an export of speechbrain_ext.publish)")
        where = f"model folder {model}"
    elif _looks_like_repo_id(model) and not os.path.exists(model):
        where = f"Hub repo {model}"
    else:
        raise VerifyError(f"model folder not found: {model}")
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


def verify_files(wav_a, wav_b, model, threshold=None, savedir=None):
    """Score two recordings and decide at the model's threshold.

    Arguments
    ---------
    wav_a, wav_b : str
        Audio files (any format SpeechBrain reads).
    model : str or SpeakerRecognition
        Model folder, Hub repo id, or an already loaded model.
    threshold : float or None
        Overrides the model's ``verification.json`` threshold.
    savedir : str or None
        Passed to :func:`load_model`.

    Returns
    -------
    dict
        ``score`` (cosine), ``threshold``, ``threshold_source``, ``accept`` (bool).

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
        model = load_model(source, savedir=savedir)
    if threshold is not None:
        threshold_source = "--threshold"
    else:
        threshold = read_threshold(os.fspath(source)) if source is not None else None
        threshold_source = "verification.json"
        if threshold is None:
            raise VerifyError(
                f"{'model ' + os.fspath(source) if source else 'the model'} has no verification.json with a "
                "threshold: pass --threshold"
            )
    wavs = [read_audio(path, model) for path in (wav_a, wav_b)]
    try:
        with torch.no_grad():
            score, _ = model.verify_batch(wavs[0].unsqueeze(0), wavs[1].unsqueeze(0), threshold=float(threshold))
    except RuntimeError as err:
        raise VerifyError(f"cannot score {wav_a!r} against {wav_b!r} (too short?): {err}") from err
    score = float(score.reshape(-1)[0])
    return {
        "score": score,
        "threshold": float(threshold),
        "threshold_source": threshold_source,
        "accept": bool(score >= float(threshold)),
    }


def main(argv=None):
    """Command line entry point; returns the exit status (0 after a decision, 2 on an error).

    Example
    -------
    >>> main(["a.wav", "b.wav", "--model", "/nonexistent/model"])  # the message goes to stderr
    2
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.verify",
        description="Speaker verification of two recordings with an exported model (cosine score, accept/reject).",
    )
    parser.add_argument("wav_a")
    parser.add_argument("wav_b")
    parser.add_argument("--model", required=True, help="model folder (publish export) or Hugging Face repo id")
    parser.add_argument("--threshold", type=float, help="decision threshold (default: the model's verification.json)")
    parser.add_argument("--savedir", help="where SpeechBrain links the model files")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        result = verify_files(args.wav_a, args.wav_b, args.model, threshold=args.threshold, savedir=args.savedir)
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        decision = "accept (same speaker)" if result["accept"] else "reject (different speakers)"
        print(f"score: {result['score']:.4f} (cosine)")
        print(f"threshold: {result['threshold']:.4f} ({result['threshold_source']})")
        print(f"decision: {decision}")
    return 0
