"""An exported speaker model scored on a recipe's trial lists, as one of the recipe's own runs.

    python -m speechbrain_ext.model_eval <out_dir> <recipe hparams.yaml> --model <export folder> [--key value ...]

scores every split of the recipe's ``eval_splits`` (with the ``--key value`` overrides, as
its ``train.py`` takes them: the same manifests and trial folders; the corpus must be
prepared already) with a model in SpeechBrain's inference layout: an export of this
package (``python -m speechbrain_ext.publish export``, ``make demo``'s ``results/demo/model``)
or any folder that ``SpeakerRecognition.from_hparams`` loads. It writes what a run's
evaluation writes (``metrics.json`` with speaker-bootstrap intervals, ``report.md``, plots,
``scores/<split>.npz``), so :mod:`speechbrain_ext.compare` pairs it with other runs or
models on the same trials, by seed.

What it is for: a model trained on one corpus (or one setting of SynthEmo's voice space)
measured on another corpus's trials without touching its run, e.g. the demo model on a
corpus of voices the project never trained on.

Embedding is the evaluation stage's: each utterance as if alone in its batch
(:func:`speechbrain_ext.batching.embed_batch`), read at the model's ``sample_rate``
(resampled when the files differ), cached per split under ``<out_dir>/embeddings`` by the
digest of the model's files and the data folder. Scores are raw cosines: no calibration (the model's own
``calibration.json`` was fitted on its training corpus's validation trials) and no score
normalisation (that needs the training speakers).
"""

import argparse
import hashlib
import json
import logging
import os
import sys

import torch

from speechbrain_ext import evaluation, extraction, report
from speechbrain_ext.batching import embed_batch
from speechbrain_ext.checkpoints import file_digest
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.publish.layout import EXPORT_INFO
from speechbrain_ext.publish.verify import load_model
from speechbrain_ext.splits import recipe_splits, scoring_arguments

__all__ = ["ModelEvalError", "evaluate_model", "main", "model_digest", "model_info"]

logger = logging.getLogger(__name__)

#: The modules of SpeechBrain's speaker-embedding inference layout that an embedding needs.
PARTS = ("compute_features", "mean_var_norm", "embedding_model")


class ModelEvalError(SpeechBrainExtError, ValueError):
    """The model folder cannot be scored (it names the folder and what is missing).

    Example
    -------
    >>> isinstance(ModelEvalError("x"), ValueError)
    True
    """


def model_digest(model_dir):
    """Digest of a model folder's ``hyperparams.yaml`` and ``*.ckpt`` files: names its embedding caches.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); _ = open(os.path.join(d, "hyperparams.yaml"), "w").write("a: 1\\n")
    >>> a = model_digest(d); _ = open(os.path.join(d, "embedding_model.ckpt"), "wb").write(b"w")
    >>> len(a), a == model_digest(d)
    (16, False)
    """
    names = sorted(n for n in os.listdir(model_dir) if n == "hyperparams.yaml" or n.endswith(".ckpt"))
    digest = hashlib.sha256()
    for name in names:
        digest.update(f"{name}:{file_digest(os.path.join(model_dir, name))};".encode())
    return digest.hexdigest()[:16]


def model_info(model_dir):
    """``{"system", "seed"}`` of an export of this package (its ``export.json``); None where it says nothing.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp(); model_info(d)
    {'system': None, 'seed': None}
    >>> _ = open(os.path.join(d, "export.json"), "w").write('{"system": "ecapa_aam", "seed": 7}')
    >>> model_info(d)
    {'system': 'ecapa_aam', 'seed': 7}
    """
    path = os.path.join(model_dir, EXPORT_INFO)
    info = {}
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                info = json.load(f)
        except ValueError as err:
            raise ModelEvalError(f"{path}: not readable JSON ({err})") from err
    return {"system": info.get("system"), "seed": info.get("seed")}


def _encoder(model_dir):
    """``(encode, sample_rate)`` of a model folder (eval mode, CPU)."""
    if not os.path.isdir(model_dir):
        raise ModelEvalError(f"model folder not found: {model_dir} (an export, e.g. results/demo/model)")
    model = load_model(model_dir)
    missing = [name for name in PARTS if name not in model.mods]
    if missing:
        raise ModelEvalError(f"model {model_dir}: its hyperparams.yaml builds no {', '.join(missing)} among its "
                             f"modules (a speaker-embedding model defines {', '.join(PARTS)})")
    parts = [model.mods[name].eval() for name in PARTS]

    def encode(wavs, lens):
        return embed_batch(*parts, wavs, lens)

    return encode, int(model.hparams.sample_rate)


def evaluate_model(model_dir, eval_splits, data_folder, out_dir, *, cache_dir=None, system=None, seed=None,
                   n_draws=1000, title=None):
    """Score a model folder on every evaluation split and write its report, as for one of the recipe's runs.

    Arguments
    ---------
    model_dir : str
        A model in SpeechBrain's inference layout (``hyperparams.yaml`` building
        ``compute_features``, ``mean_var_norm`` and ``embedding_model``, with its ``*.ckpt``).
    eval_splits : list of speechbrain_ext.splits.Split
        The splits (manifest and trial folder), e.g. a recipe's ``eval_splits``.
    data_folder : str
        Replacement of ``$data_root`` in the manifests.
    out_dir : str
        Where the report goes.
    cache_dir : str or None
        Embedding cache folder (default: ``<out_dir>/embeddings``).
    system, seed : str, int or None
        Name and seed the scores carry (default: the export's ``export.json``); a comparison
        pairs runs by seed.
    n_draws : int
        Speaker-bootstrap draws of the intervals.
    title : str or None
        Report title.

    Returns
    -------
    dict
        ``{"conditions": <first split's>, "splits": {split: {condition: metrics}}, "system", "seed", ...}``.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> from speechbrain_ext.splits import Split
    >>> d = tempfile.mkdtemp(); rng = np.random.default_rng(0)
    >>> for u in ("a", "b", "c", "e"):
    ...     sf.write(os.path.join(d, u + ".wav"), rng.normal(0, 0.1, 8000), 16000)
    >>> rows = "".join(f"{u},0.5,$data_root/{u}.wav,{s}\\n" for u, s in zip("abce", "AABB"))
    >>> _ = open(os.path.join(d, "m.csv"), "w").write("ID,duration,wav,spk_id\\n" + rows)
    >>> os.mkdir(os.path.join(d, "trials"))
    >>> _ = open(os.path.join(d, "trials", "all.txt"), "w").write("1 a b\\n0 a c\\n1 c e\\n0 c a\\n")
    >>> evaluate_model(os.path.join(d, "none"), [Split("eval", os.path.join(d, "m.csv"), os.path.join(d, "trials"))],
    ...                d, os.path.join(d, "out"))
    Traceback (most recent call last):
    ...
    speechbrain_ext.model_eval.ModelEvalError: model folder not found: .../none (an export, e.g. results/demo/model)
    """
    model_dir = os.path.abspath(model_dir)
    encode, sample_rate = _encoder(model_dir)
    info = model_info(model_dir)
    system = system or info["system"] or os.path.basename(model_dir)
    seed = info["seed"] if seed is None else seed
    cache_dir = os.path.join(out_dir, "embeddings") if cache_dir is None else cache_dir
    extra = {"system": system, "seed": seed, "model": model_dir, "model_digest": model_digest(model_dir),
             "torch_threads": torch.get_num_threads()}
    # a cache is named by the model and the manifest's text, whose paths are relative to data_folder
    folder = hashlib.sha256(os.path.abspath(data_folder).encode()).hexdigest()[:8]
    with torch.no_grad():
        metrics = evaluation.evaluate(
            encode, extraction.utterance_loader, eval_splits, data_folder, out_dir, sample_rate=sample_rate,
            cache_dir=cache_dir, checkpoint_path=os.path.join(model_dir, f"{extra['model_digest']}-{folder}"),
            n_draws=n_draws, title=title or f"{system}: {model_dir}", extra=extra,
        )
    return {"conditions": metrics[eval_splits[0].name], "splits": metrics, **extra}


def main(argv=None):
    """Command line entry point; returns the exit status.

    Example
    -------
    >>> main(["/tmp/never", "/nonexistent.yaml", "--model", "/nonexistent"])  # the error goes to stderr
    2
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ext.model_eval",
        description="Score an exported speaker model on every evaluation split of a recipe configuration; writes "
                    "metrics.json, report.md and scores/<split>.npz. Further --key value arguments are overrides "
                    "of the recipe's hparams (as for its train.py).",
    )
    scoring_arguments(parser)
    parser.add_argument("--model", required=True, help="the model folder (SpeechBrain inference layout)")
    parser.add_argument("--system", help="the name the scores carry (default: the export's system)")
    parser.add_argument("--seed", type=int, help="the seed the scores carry (default: the export's)")
    args, recipe_args = parser.parse_known_args(argv)
    torch.set_num_threads(args.threads)
    try:
        eval_splits, data_folder = recipe_splits(args.hparams, recipe_args)
        payload = evaluate_model(args.model, eval_splits, data_folder, args.out_dir, cache_dir=args.cache_dir,
                                 system=args.system, seed=args.seed, n_draws=args.draws)
    except (SpeechBrainExtError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.format_splits(payload["splits"]))
    print(f"report: {os.path.join(args.out_dir, 'report.md')}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
