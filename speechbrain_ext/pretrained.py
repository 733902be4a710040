"""Start a training run from an encoder trained by another recipe (fine-tuning).

The EmoSpeech recipe fine-tunes the speaker encoder of a CN-Celeb or VoxCeleb run on
an emotional corpus (Tian, Hu & Xu 2025 pre-train on VoxCeleb). Its YAML names the
source in ``pretrained_encoder`` and calls :func:`load_pretrained_encoder` with
``!apply:`` when the hyperparameters are loaded, i.e. before the Brain exists::

    pretrained_encoder: results/VoxCeleb/ecapa_aam/seed1986   # null: from scratch
    __load_pretrained: !apply:speechbrain_ext.pretrained.load_pretrained_encoder
        modules: !ref <modules>
        path: !ref <pretrained_encoder>

Design: the weights are copied into the module objects the Brain will train, so
nothing in the runner or the Brain knows about fine-tuning. SpeechBrain's
``Checkpointer`` recovers its own checkpoints in ``Brain.on_fit_start``, i.e. AFTER
this load: a resumed fine-tuning run continues from its latest checkpoint, and a
fresh one starts from the pre-trained weights. Every DDP rank loads the same files.

Loaded: ``embedding_model`` (strictly: every tensor must exist with the same shape,
so ``channels``/``emb_dim``/``n_mels`` must match the pre-training run) and the
feature normaliser ``mean_var_norm`` where the source has one (``normalizer.ckpt`` of
a checkpoint, ``mean_var_norm.ckpt`` of an export; with sentence-level
normalisation it holds no statistics). NOT loaded: the classifier, whose rows are
the pre-training speakers (a different speaker set, a different ``n_speakers``), nor
the optimiser, the epoch counter or the sampler state.
"""

import glob
import logging
import os

import torch
from speechbrain.utils.checkpoints import DEFAULT_TRANSFER_HOOKS, get_default_hook

from speechbrain_ext.errors import SpeechBrainExtError

logger = logging.getLogger(__name__)

__all__ = ["PretrainedError", "find_encoder_files", "load_pretrained_encoder"]

#: File names of each loadable part: a training checkpoint (Checkpointer recoverable names) or an export.
PART_FILES = {
    "embedding_model": ("embedding_model.ckpt",),
    "mean_var_norm": ("normalizer.ckpt", "mean_var_norm.ckpt"),
}
REQUIRED_PARTS = ("embedding_model",)


class PretrainedError(SpeechBrainExtError, FileNotFoundError):
    """The pre-trained source is missing or does not fit; the message names the path.

    Example
    -------
    >>> str(PretrainedError("no embedding_model.ckpt in /x"))
    'no embedding_model.ckpt in /x'
    """


def _best_checkpoint(save_dir):
    """The checkpoint folder of ``save_dir`` with the lowest ``EER`` in its meta (else the newest)."""
    import yaml

    candidates = []
    for ckpt in glob.glob(os.path.join(glob.escape(save_dir), "CKPT*")):
        meta_path = os.path.join(ckpt, "CKPT.yaml")
        if not os.path.isfile(meta_path):
            continue
        with open(meta_path) as f:
            meta = yaml.safe_load(f) or {}
        eer = meta.get("EER") if isinstance(meta, dict) else None
        eer = float(eer) if isinstance(eer, int | float) else float("inf")
        candidates.append((eer, -float(meta.get("unixtime", 0) if isinstance(meta, dict) else 0), ckpt))
    return min(candidates)[2] if candidates else None


def find_encoder_files(path):
    """The files :func:`load_pretrained_encoder` reads from ``path``.

    ``path`` may be a checkpoint folder (``.../save/CKPT+...``, as the
    ``Checkpointer`` writes), an experiment folder (its ``save/`` checkpoint with the
    lowest validation EER is taken), or an exported model folder
    (``python -m speechbrain_ext.hub export``).

    Arguments
    ---------
    path : str
        The source folder.

    Returns
    -------
    dict
        ``{part: file}`` for the parts found (``embedding_model`` always).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "save", "CKPT+1"))
    >>> for name in ("CKPT.yaml", "embedding_model.ckpt", "classifier.ckpt"):
    ...     _ = open(os.path.join(d, "save", "CKPT+1", name), "w").write("EER: 5.0\\n")
    >>> sorted(find_encoder_files(d))
    ['embedding_model']
    >>> find_encoder_files(os.path.join(d, "nowhere"))
    Traceback (most recent call last):
    ...
    speechbrain_ext.pretrained.PretrainedError: pretrained_encoder: folder not found: .../nowhere; ...
    """
    path = os.path.abspath(str(path))
    if not os.path.isdir(path):
        raise PretrainedError(
            f"pretrained_encoder: folder not found: {path}; give a checkpoint folder (save/CKPT+...), "
            "an experiment folder of the CN-Celeb or VoxCeleb recipe, or an exported model folder "
            "(or --pretrained_encoder null to train from scratch)"
        )
    folder = path
    if not os.path.isfile(os.path.join(path, PART_FILES["embedding_model"][0])):
        save = os.path.join(path, "save")
        best = _best_checkpoint(save) if os.path.isdir(save) else _best_checkpoint(path)
        if best is None:
            raise PretrainedError(
                f"pretrained_encoder: no {PART_FILES['embedding_model'][0]} in {path}, and no checkpoint "
                f"(save/CKPT+*/CKPT.yaml) under it: train the pre-training recipe first"
            )
        folder = best
    files = {}
    for part, names in PART_FILES.items():
        for name in names:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate):
                files[part] = candidate
                break
    missing = [p for p in REQUIRED_PARTS if p not in files]
    if missing:
        raise PretrainedError(f"pretrained_encoder: {folder} has no {PART_FILES[missing[0]][0]}")
    return files


def _load_module_strict(module, file):
    state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise PretrainedError(f"pretrained_encoder: {file} is not a state dict")
    own = module.state_dict()
    problems = [f"missing {k}" for k in own if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in own]
    problems += [
        f"{k}: {tuple(state[k].shape)} in the file vs {tuple(v.shape)} here"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if problems:
        raise PretrainedError(
            f"pretrained_encoder: {file} does not fit the embedding_model of these hparams "
            f"({len(problems)} problem(s); first: {'; '.join(problems[:3])}); channels, emb_dim and n_mels "
            "must be those of the pre-training run"
        )
    module.load_state_dict(state, strict=True)


def load_pretrained_encoder(modules, path):
    """Copy a pre-trained encoder (and feature normaliser) into ``modules``; ``path=None`` does nothing.

    Arguments
    ---------
    modules : dict
        The recipe's ``modules`` (``embedding_model``, optionally ``mean_var_norm``).
        ``classifier`` is never touched.
    path : str or None
        Checkpoint folder, experiment folder or exported model folder (see
        :func:`find_encoder_files`).

    Returns
    -------
    dict or None
        ``{part: file}`` of what was loaded, or ``None`` when ``path`` is ``None``.

    Example
    -------
    >>> import tempfile
    >>> src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    >>> d = tempfile.mkdtemp()
    >>> torch.save(src.state_dict(), os.path.join(d, "embedding_model.ckpt"))
    >>> loaded = load_pretrained_encoder({"embedding_model": dst, "classifier": torch.nn.Linear(2, 5)}, d)
    >>> sorted(loaded), bool(torch.equal(src.weight, dst.weight))
    (['embedding_model'], True)
    >>> load_pretrained_encoder({"embedding_model": torch.nn.Linear(4, 2)}, d)
    Traceback (most recent call last):
    ...
    speechbrain_ext.pretrained.PretrainedError: pretrained_encoder: ... weight: (2, 3) in the file vs (2, 4) here...
    >>> load_pretrained_encoder({"embedding_model": dst}, None) is None
    True
    """
    if path is None or str(path).strip().lower() in ("", "none", "null"):
        return None
    files = find_encoder_files(path)
    loaded = {}
    for part, file in files.items():
        module = modules.get(part)
        if module is None:
            continue
        if part == "embedding_model":
            _load_module_strict(module, file)
        else:  # the object's own transfer hook (InputNormalization: its statistics)
            hook = get_default_hook(module, DEFAULT_TRANSFER_HOOKS)
            if hook is None:
                continue
            hook(module, file)
        loaded[part] = file
    logger.info("pretrained_encoder: loaded %s from %s (classifier not loaded)", ", ".join(sorted(loaded)), path)
    return loaded
