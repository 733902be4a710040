"""Resemblyzer, the external anchor: a pretrained speaker encoder that no one here wrote.

Resemblyzer 0.1.4 (Resemble AI, 2019) is a 3-layer LSTM trained with the GE2E loss; its
weights ship inside its wheel, so it runs offline. It goes through the evaluation stage of
the project's systems (:func:`speechbrain_ext.evaluation.evaluate`, with its ``encode``): the
same trial lists, scoring, intervals, ``metrics.json`` / ``report.md`` and per-trial
``scores/<split>.npz``, so a comparison (:mod:`speechbrain_ext.compare`, a suite report)
shows it as one more system on the same trials::

    python -m speechbrain_ext.anchor <out_dir> <recipe hparams.yaml> [--key value ...]

scores every split of the recipe's ``eval_splits`` (with those overrides: the same
manifests and trial folders as the recipe's runs; its data must be prepared already).

Preprocessing. Resemblyzer's README embeds ``preprocess_wav(wav)`` output with
``VoiceEncoder().embed_utterance``, and ``embed_utterance`` documents its input as "a
preprocessed utterance waveform". The anchor does the same: the volume is raised (never
lowered) to -30 dBFS and silences longer than the VAD allows are cut (WebRTC VAD, mode 3).
The audio is read by the evaluation stage's reader at 16 kHz (Resemblyzer's rate), so no
resampling happens inside Resemblyzer. Two inputs that ``preprocess_wav`` cannot handle
are documented departures: an all-zero waveform skips preprocessing (its volume
normalisation divides by zero and returns NaN), and an utterance in which the VAD finds no
speech at all is embedded untrimmed (counted as ``embedded_untrimmed``). There is nothing
else to set: the anchor is never tuned on this project's data.

Installation. ``make test`` and ``make demo`` install it (Makefile install rule). Resemblyzer
declares ``webrtcvad``, a source-only package that needs a C compiler, so it is installed with
``--no-deps`` next to the ``anchor`` extra of ``setup.cfg`` (``webrtcvad-wheels``, the same
``webrtcvad`` module prebuilt, and ``librosa``). Without it nothing breaks: the anchor is
imported lazily, and :func:`evaluate_anchor` writes a report that says the anchor row was
skipped and why.

Threads: Resemblyzer runs on torch and numpy, which follow ``OMP_NUM_THREADS``. Its LSTM
gains nothing from a second thread on a shared machine and can lose much
(``bench/bench_anchor.py``: 2 threads were 14x slower than 1 there): the command line runs
it on one thread unless told otherwise (``--threads``).
"""

import argparse
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import pickle
import sys
import warnings

import numpy as np
import torch

from speechbrain_ext import (
    evaluation,  # the evaluation stage: the one import of it here
    extraction,
    files,
    report,
)
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.splits import recipe_splits, scoring_arguments

__all__ = [
    "REQUIREMENT",
    "AnchorUnavailable",
    "ResemblyzerEncoder",
    "anchor_skip_reason",
    "cache_path",
    "embed_manifest",
    "evaluate_anchor",
    "load_resemblyzer",
    "main",
    "skip_reason",
    "status_line",
]

logger = logging.getLogger(__name__)

REQUIREMENT = "resemblyzer==0.1.4"  # the Makefile's install rule installs this pin
INSTALL_HINT = f"pip install -e '.[anchor]' && pip install --no-deps {REQUIREMENT}, as `make test` does"
SAMPLE_RATE = 16000  # Resemblyzer's hparams.sampling_rate
SYSTEM = "Resemblyzer"
PREPROCESSING = {
    True: "resemblyzer.preprocess_wav (volume up to -30 dBFS, long silences cut by WebRTC VAD)",
    False: "none (raw waveform)",
}


class AnchorUnavailable(SpeechBrainExtError, ImportError):
    """Resemblyzer cannot be imported; the message says why and how to install it.

    Example
    -------
    >>> isinstance(AnchorUnavailable("resemblyzer is not installed"), ImportError)
    True
    """


def load_resemblyzer():
    """Import and return the ``resemblyzer`` module.

    Raises
    ------
    AnchorUnavailable
        When it (or one of its imports, e.g. ``webrtcvad``) is missing.

    Example
    -------
    >>> load_resemblyzer().sampling_rate
    16000
    """
    try:
        with warnings.catch_warnings():
            # resemblyzer 0.1.4 imports binary_dilation from scipy's deprecated ndimage.morphology
            warnings.filterwarnings("ignore", message="Please import `binary_dilation`", category=DeprecationWarning)
            return importlib.import_module("resemblyzer")
    except ImportError as err:
        if err.name == "resemblyzer":
            reason = "resemblyzer is not installed"
        else:
            reason = f"resemblyzer cannot be imported ({type(err).__name__}: {err})"
        raise AnchorUnavailable(f"{reason} (install with: {INSTALL_HINT})") from err


def anchor_skip_reason():
    """``None`` when the anchor can run, else why its row is skipped (with the install command).

    Example
    -------
    >>> anchor_skip_reason() is None
    True
    """
    try:
        load_resemblyzer()
    except AnchorUnavailable as err:
        return str(err)
    return None


class ResemblyzerEncoder:
    """Resemblyzer's ``VoiceEncoder`` behind the evaluation stage's ``encode(wavs, lens)``.

    Arguments
    ---------
    preprocess : bool
        Apply Resemblyzer's ``preprocess_wav`` first, as its README does (see the module notes).
    device : str
        Torch device of the LSTM.

    Example
    -------
    >>> enc = ResemblyzerEncoder()
    >>> wavs = 0.1 * torch.randn(2, SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    >>> emb = enc.encode(wavs, torch.tensor([1.0, 0.5]))
    >>> emb.shape, torch.allclose(emb.norm(dim=-1), torch.ones(2, 1))
    (torch.Size([2, 1, 256]), True)
    """

    def __init__(self, preprocess=True, device="cpu"):
        self.lib = load_resemblyzer()
        self.version = importlib.metadata.version("resemblyzer")
        self.preprocess = bool(preprocess)
        self.model = self.lib.VoiceEncoder(device=device, verbose=False).eval()
        self.embedded_untrimmed = 0
        self.audio_seconds = 0.0  # of the utterances :meth:`encode` embedded

    def prepare(self, wav):
        """The waveform Resemblyzer embeds: ``preprocess_wav`` output (see the module notes).

        Example
        -------
        >>> enc = ResemblyzerEncoder()
        >>> enc.prepare(np.zeros(4800, dtype=np.float32)).shape  # silence: left as it is
        (4800,)
        """
        wav = np.asarray(wav, dtype=np.float32)
        if not self.preprocess or not np.any(wav):
            return wav
        trimmed = self.lib.preprocess_wav(wav)
        if trimmed.size:
            return trimmed
        self.embedded_untrimmed += 1
        return self.lib.normalize_volume(wav, self.lib.hparams.audio_norm_target_dBFS, increase_only=True)

    def embed(self, wav):
        """The L2-normalised ``[256]`` embedding of one 16 kHz waveform (numpy float32).

        Example
        -------
        >>> enc = ResemblyzerEncoder()
        >>> round(float(np.linalg.norm(enc.embed(np.random.default_rng(0).normal(0, 0.1, 16000)))), 4)
        1.0
        """
        with torch.no_grad():
            return self.model.embed_utterance(self.prepare(wav))

    def encode(self, wavs, lens):
        """Embeddings ``[B, 1, 256]`` of a padded batch, like a Brain's ``encode``.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, S]`` float waveforms at 16 kHz.
        lens : torch.Tensor
            ``[B]`` relative lengths (SpeechBrain convention).

        Example
        -------
        >>> enc = ResemblyzerEncoder()
        >>> wav = 0.1 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(1))
        >>> padded = torch.cat([wav, torch.zeros(1, 8000)], dim=1)
        >>> torch.allclose(enc.encode(padded, torch.tensor([0.5])), enc.encode(wav, torch.ones(1)))
        True
        """
        lengths = torch.round(lens.detach().cpu() * wavs.shape[1]).long().tolist()
        signals = wavs.detach().cpu().float().numpy()
        self.audio_seconds += sum(lengths) / SAMPLE_RATE
        embeddings = [self.embed(signal[:n]) for signal, n in zip(signals, lengths)]
        return torch.from_numpy(np.stack(embeddings)).float().unsqueeze(1)


def _identity(data_folder, version, preprocess, cache_dir):
    """The anchor's stand-in for the checkpoint path that :func:`extraction.cache_key` names a cache by."""
    folder = hashlib.sha256(os.path.abspath(data_folder).encode()).hexdigest()[:8]
    kind = "preprocess" if preprocess else "raw"
    return os.path.join(os.path.abspath(cache_dir), f"resemblyzer-{version}-{kind}-{folder}")


def cache_path(cache_dir, name, manifest, data_folder, version, preprocess):
    """The embedding cache of one split: the file the evaluation stage reads for it.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "m.csv"); _ = open(p, "w").write("x")
    >>> a = cache_path("/c", "eval", p, "/d", "0.1.4", True)
    >>> a.startswith("/c/eval-"), a.endswith(".pt"), a == cache_path("/c", "eval", p, "/d", "0.1.5", True)
    (True, True, False)
    """
    key = extraction.cache_key(_identity(data_folder, version, preprocess, cache_dir), manifest)
    return os.path.join(os.path.abspath(cache_dir), f"{name}-{key}.pt")


def _read_cache(path):
    try:
        stored = torch.load(path, weights_only=True)
        return stored["ids"], stored["embeddings"], stored["info"]
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, pickle.UnpicklingError) as err:
        logger.warning("cannot read the anchor cache %s (%s: %s); embedding again", path, type(err).__name__, err)
        return None


def embed_manifest(manifest, data_folder, cache_dir=None, encoder=None, name=None):
    """Resemblyzer embeddings of every readable utterance of a manifest, cached on disk.

    The embeddings come from :func:`speechbrain_ext.extraction.extract_embeddings` with the
    encoder's ``encode``; unreadable audio is skipped and counted as in the evaluation stage
    (a trial that needs a skipped utterance then fails scoring with its file and line). The
    cache is the file the evaluation stage looks for (:func:`cache_path`), with the counts
    below added; a damaged cache is embedded again (with a warning).

    Arguments
    ---------
    manifest : str
        CSV manifest (``ID, duration, wav, spk_id``; ``$data_root`` in ``wav``).
    data_folder : str
        Replacement of ``$data_root``.
    cache_dir : str or None
        Where the cache is kept; ``None``: no cache.
    encoder : ResemblyzerEncoder or None
        Default: a new one with preprocessing.
    name : str or None
        The split's name, first part of the cache file's name (default: the manifest's name).

    Returns
    -------
    ids : list of str
    embeddings : torch.Tensor
        ``[N, 256]`` float32.
    info : dict
        ``utterances``, ``skipped_unreadable``, ``embedded_untrimmed``, ``audio_seconds``.

    Example
    -------
    >>> import tempfile, soundfile as sf
    >>> d = tempfile.mkdtemp()
    >>> sf.write(os.path.join(d, "a.wav"), np.random.default_rng(0).normal(0, 0.1, 16000), 16000)
    >>> _ = open(os.path.join(d, "m.csv"), "w").write("ID,duration,wav,spk_id\\na,1.0,$data_root/a.wav,s\\n")
    >>> ids, emb, info = embed_manifest(os.path.join(d, "m.csv"), d, cache_dir=d)
    >>> ids, emb.shape, info["utterances"], len([n for n in os.listdir(d) if n.startswith("m-")])
    (['a'], torch.Size([1, 256]), 1, 1)
    """
    encoder = encoder or ResemblyzerEncoder()
    name = name or os.path.splitext(os.path.basename(manifest))[0]
    cache = None
    if cache_dir:
        cache = cache_path(cache_dir, name, manifest, data_folder, encoder.version, encoder.preprocess)
        cached = _read_cache(cache) if os.path.isfile(cache) else None
        if cached is not None:
            return cached
    dataset = extraction.utterance_dataset(manifest, data_folder, SAMPLE_RATE)
    before = (encoder.embedded_untrimmed, encoder.audio_seconds)
    ids, embeddings = extraction.extract_embeddings(encoder.encode, extraction.utterance_loader, dataset, desc=name)
    if not ids:
        embeddings = torch.zeros(0, 256)
    info = {
        "utterances": len(ids),
        "skipped_unreadable": len(dataset) - len(ids),
        "embedded_untrimmed": encoder.embedded_untrimmed - before[0],
        "audio_seconds": round(encoder.audio_seconds - before[1], 3),
    }
    if cache:
        with files.atomic_path(cache) as tmp:
            torch.save({"ids": ids, "embeddings": embeddings, "info": info}, tmp)
    return ids, embeddings, info


def skip_reason(out_dir):
    """Why the anchor report in ``out_dir`` was skipped (its ``metrics.json``'s ``skipped``), else None.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); skip_reason(d) is None
    True
    >>> _ = _write_skipped(d, "t", "resemblyzer is not installed"); skip_reason(d)
    'resemblyzer is not installed'
    """
    path = os.path.join(out_dir, report.METRICS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("skipped")


def _write_skipped(out_dir, title, reason):
    payload = {"conditions": {}, "system": SYSTEM, "skipped": reason}
    files.atomic_write_json(os.path.join(out_dir, report.METRICS_FILE), payload)
    with files.atomic_write(os.path.join(out_dir, "report.md")) as f:
        f.write(f"# {title}\n\n{status_line(payload)}\n")
    return payload


def evaluate_anchor(eval_splits, data_folder, out_dir, cache_dir=None, title=None, preprocess=True, n_draws=1000):
    """Score Resemblyzer on every evaluation split and write its report, as for one of our systems.

    Goes through :func:`speechbrain_ext.evaluation.evaluate` with the anchor's ``encode``:
    ``metrics.json`` (EER and minDCF with speaker-bootstrap intervals), ``report.md``,
    plots and the per-trial ``scores/<split>.npz`` of every split, so a comparison
    (:mod:`speechbrain_ext.compare`) takes the anchor as one more system. The embeddings
    are cached per split (:func:`embed_manifest`). When Resemblyzer is not installed it
    writes only ``metrics.json`` (``"skipped": <why>``, no conditions) and a ``report.md``
    saying so, and returns that payload: the caller prints :func:`status_line` and goes on.

    Arguments
    ---------
    eval_splits : list of speechbrain_ext.splits.Split
        The splits (manifest and trial folder), e.g. a recipe's ``eval_splits``.
    data_folder : str
        Replacement of ``$data_root`` in the manifests.
    out_dir : str
        Where the report goes.
    cache_dir : str or None
        Embedding cache folder (default: ``<out_dir>/embeddings``).
    title : str or None
        Report title (default: names Resemblyzer).
    preprocess : bool
        Resemblyzer's ``preprocess_wav`` (the default, as its README does).
    n_draws : int
        Speaker-bootstrap draws of the intervals.

    Returns
    -------
    dict
        ``{"conditions": <first split's>, "splits": {split: {condition: metrics}}, "system": ..., ...}``.

    Example
    -------
    >>> import tempfile, soundfile as sf
    >>> from speechbrain_ext.splits import Split
    >>> d = tempfile.mkdtemp(); rng = np.random.default_rng(0)
    >>> for u in ("a", "b", "c", "e"):
    ...     sf.write(os.path.join(d, u + ".wav"), rng.normal(0, 0.1, 16000), 16000)
    >>> rows = "".join(f"{u},1.0,$data_root/{u}.wav,{s}\\n" for u, s in zip("abce", "AABB"))
    >>> _ = open(os.path.join(d, "m.csv"), "w").write("ID,duration,wav,spk_id\\n" + rows)
    >>> os.mkdir(os.path.join(d, "trials"))
    >>> _ = open(os.path.join(d, "trials", "all.txt"), "w").write("1 a b\\n0 a c\\n1 c e\\n0 c a\\n")
    >>> out = evaluate_anchor([Split("eval", os.path.join(d, "m.csv"), os.path.join(d, "trials"))], d,
    ...                       os.path.join(d, "out"), n_draws=10)
    >>> out["system"], out["conditions"]["all"]["n_target"], sorted(os.listdir(os.path.join(d, "out", "scores")))
    ('Resemblyzer', 2, ['eval.npz'])
    """
    title = title or f"{SYSTEM} (external anchor)"
    try:
        encoder = ResemblyzerEncoder(preprocess=preprocess)
    except AnchorUnavailable as err:
        logger.warning("anchor row skipped: %s", err)
        return _write_skipped(out_dir, title, str(err))
    cache_dir = os.path.join(out_dir, "embeddings") if cache_dir is None else cache_dir
    embedded = {split.name: embed_manifest(split.annotation, data_folder, cache_dir, encoder, split.name)[2]
                for split in eval_splits}
    extra = {
        "system": SYSTEM,
        "resemblyzer_version": encoder.version,
        "preprocessing": PREPROCESSING[encoder.preprocess],
        "torch_threads": torch.get_num_threads(),
        "embedded": embedded,
    }
    metrics = evaluation.evaluate(
        encoder.encode, extraction.utterance_loader, eval_splits, data_folder, out_dir, sample_rate=SAMPLE_RATE,
        cache_dir=cache_dir, checkpoint_path=_identity(data_folder, encoder.version, encoder.preprocess, cache_dir),
        n_draws=n_draws, title=title, extra=extra,
    )
    return {"conditions": metrics[eval_splits[0].name], "splits": metrics, **extra}


def status_line(payload):
    """One line for a terminal or a report: the anchor's EER on ``all``, or why its row was skipped.

    Example
    -------
    >>> status_line({"conditions": {}, "skipped": "resemblyzer is not installed"})
    'anchor row skipped: resemblyzer is not installed'
    >>> status_line({"conditions": {"all": {"eer": 0.0153}}, "system": "Resemblyzer"})
    'anchor (Resemblyzer): EER 1.53 % on all'
    """
    if payload.get("skipped"):
        return f"anchor row skipped: {payload['skipped']}"
    conditions = payload["conditions"]
    name = "all" if "all" in conditions else next(iter(conditions))
    return f"anchor ({payload.get('system', SYSTEM)}): EER {100 * conditions[name]['eer']:.2f} % on {name}"


def main(argv=None):
    """Command line entry point; returns the exit status (0 also when the anchor row is skipped).

    Example
    -------
    >>> main(["/tmp/never", "/nonexistent.yaml"])  # "error: hyperparameter file not found: ..." on stderr
    2
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.anchor",
        description="Score Resemblyzer (external anchor) on every evaluation split of a recipe configuration; "
                    "writes metrics.json, report.md and scores/<split>.npz. Further --key value arguments are "
                    "overrides of the recipe's hparams (as for its train.py).",
    )
    scoring_arguments(parser, threads_help="torch threads (default 1: see the module notes)")
    parser.add_argument("--no-preprocess", action="store_true", help="skip Resemblyzer's preprocess_wav")
    args, recipe_args = parser.parse_known_args(argv)
    torch.set_num_threads(args.threads)
    try:
        reason = anchor_skip_reason()
        if reason is not None:
            payload = _write_skipped(args.out_dir, f"{SYSTEM} (external anchor)", reason)
        else:
            eval_splits, data_folder = recipe_splits(args.hparams, recipe_args)
            payload = evaluate_anchor(eval_splits, data_folder, args.out_dir, cache_dir=args.cache_dir,
                                      preprocess=not args.no_preprocess, n_draws=args.draws)
    except (SpeechBrainExtError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not payload.get("skipped"):
        print(report.format_splits(payload["splits"]))
    print(status_line(payload))
    print(f"report: {os.path.join(args.out_dir, 'report.md')}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
