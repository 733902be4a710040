"""Start a training run from the weights of another run: cross-corpus or same-speaker fine-tuning.

Two modes, both called with ``!apply:`` when the hyperparameters are loaded:

- :func:`load_pretrained_encoder` (cross-corpus fine-tuning, below): the encoder and
  feature normaliser of a run on another corpus; the classifier starts anew.
- :func:`init_from_run` (a further stage on the same speakers, e.g. large-margin
  fine-tuning, ``recipes/shared_hparams/large_margin.yaml``): the encoder,
  normaliser AND classifier of the best checkpoint of a run of the same system,
  after checking that its speakers and tensor shapes are this run's.

Cross-corpus fine-tuning
------------------------

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

__all__ = [
    "PretrainedError",
    "check_same_speakers",
    "find_encoder_files",
    "find_run_checkpoint",
    "init_from_run",
    "load_pretrained_encoder",
]

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


def _best_checkpoint(save_dir, require_eer=False):
    """The checkpoint folder of ``save_dir`` with the lowest ``EER`` in its meta (else the newest).

    With ``require_eer`` only end-of-epoch checkpoints (those with a validation EER)
    are candidates, as the recipe's own ``recover_if_possible(min_key="EER")``.
    """
    import yaml

    candidates = []
    for ckpt in glob.glob(os.path.join(glob.escape(save_dir), "CKPT*")):
        meta_path = os.path.join(ckpt, "CKPT.yaml")
        if not os.path.isfile(meta_path):
            continue
        with open(meta_path) as f:
            meta = yaml.safe_load(f) or {}
        meta = meta if isinstance(meta, dict) else {}
        eer = meta.get("EER")
        if require_eer and not isinstance(eer, int | float):
            continue
        eer = float(eer) if isinstance(eer, int | float) else float("inf")
        candidates.append((eer, -float(meta.get("unixtime", 0)), ckpt))
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


def _checked_state(module, file, context, part, hint):
    """The state dict in ``file`` if it fits ``module`` key for key and shape for shape (else an error naming both)."""
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise PretrainedError(f"{context}: {file} cannot be read with torch.load(weights_only=True): {err}") from err
    if not isinstance(state, dict):
        raise PretrainedError(f"{context}: {file} is not a state dict")
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
            f"{context}: {file} does not fit the {part} of these hparams "
            f"({len(problems)} problem(s); first: {'; '.join(problems[:3])}); {hint}"
        )
    return state


def _load_module_strict(module, file):
    state = _checked_state(module, file, "pretrained_encoder", "embedding_model",
                           "channels, emb_dim and n_mels must be those of the pre-training run")
    module.load_state_dict(state, strict=True)


def _load_statistics(module, file):
    """Load ``file`` with the object's own transfer hook (InputNormalization: its statistics); False if it has none."""
    hook = get_default_hook(module, DEFAULT_TRANSFER_HOOKS)
    if hook is None:
        return False
    hook(module, file)
    return True


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
        elif not _load_statistics(module, file):
            continue
        loaded[part] = file
    logger.info("pretrained_encoder: loaded %s from %s (classifier not loaded)", ", ".join(sorted(loaded)), path)
    return loaded


# ------------------------------------------------------------------ continuing a trained run (fine-tuning stages)
#: What :func:`init_from_run` copies: Checkpointer recoverable names of the recipes' checkpoints.
RUN_PARTS = {"embedding_model": "embedding_model.ckpt", "classifier": "classifier.ckpt",
             "mean_var_norm": "normalizer.ckpt"}
LABEL_ENCODER = "label_encoder.txt"


def find_run_checkpoint(path, output_folder=None):
    """The best checkpoint (lowest valid EER) of a trained run and the run's label encoder file.

    Arguments
    ---------
    path : str
        The source run's output folder (``<output_root>/<system>/seed<seed>``), its
        ``save/`` folder, or one of its checkpoint folders (``save/CKPT+...``).
    output_folder : str, optional
        This run's output folder; a source inside it (or holding it) is refused, so
        the source run is never written to.

    Returns
    -------
    (str, str)
        The checkpoint folder and ``label_encoder.txt``.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> find_run_checkpoint(d)
    Traceback (most recent call last):
    ...
    speechbrain_ext.pretrained.PretrainedError: init_from: the source folder ... is empty; ...
    >>> for name, meta in (("CKPT+1", "EER: 5.0"), ("CKPT+2", "EER: 4.0"), ("CKPT+3", "brain_intra_epoch_ckpt: true")):
    ...     os.makedirs(os.path.join(d, "save", name))
    ...     _ = open(os.path.join(d, "save", name, "CKPT.yaml"), "w").write(meta + "\\n")
    >>> ckpt, labels = find_run_checkpoint(d)
    >>> os.path.basename(ckpt), os.path.relpath(labels, d)
    ('CKPT+2', 'save/label_encoder.txt')
    """
    path = os.path.abspath(str(path))
    if not os.path.isdir(path):
        raise PretrainedError(
            f"init_from: folder not found: {path}; give the output folder of a trained run of this recipe "
            "(e.g. results/SynthEmo/ecapa_aam/seed1986) or one of its save/CKPT+... folders"
        )
    if not os.listdir(path):
        raise PretrainedError(f"init_from: the source folder {path} is empty; train the source system first")
    if os.path.isfile(os.path.join(path, "CKPT.yaml")):
        checkpoint, save = path, os.path.dirname(path)
    else:
        save = os.path.join(path, "save") if os.path.isdir(os.path.join(path, "save")) else path
        checkpoint = _best_checkpoint(save, require_eer=True)
        if checkpoint is None:
            raise PretrainedError(
                f"init_from: no checkpoint with a validation EER under {save} (expected save/CKPT+*/CKPT.yaml "
                "written at the end of an epoch; mid-epoch checkpoints are not selected): let the source run "
                "finish at least one epoch"
            )
    if output_folder is not None:
        here = os.path.abspath(str(output_folder))
        if os.path.commonpath([here, checkpoint]) in (here, checkpoint):
            raise PretrainedError(
                f"init_from: the source checkpoint {checkpoint} and this run's output folder {here} overlap; "
                "a fine-tuning run writes to its own folder (its system name ends in _lm) and never to the source"
            )
    return checkpoint, os.path.join(save, LABEL_ENCODER)


def _read_label_encoder(path, what):
    from speechbrain.dataio.encoder import CategoricalEncoder

    encoder = CategoricalEncoder()
    try:
        encoder.load(path)
    except Exception as err:  # SpeechBrain raises several types for a foreign file
        raise PretrainedError(f"init_from: {path} ({what}) is not a label encoder file: {err}") from err
    return encoder.lab2ind


def _run_speakers(train_annotation, label_encoder):
    """``{speaker: class}`` this run will train: its saved label encoder (resumed run), else its manifest's."""
    from speechbrain.dataio.encoder import CategoricalEncoder

    from speechbrain_ext import data as sx_data

    if label_encoder is not None and os.path.isfile(label_encoder):
        return _read_label_encoder(label_encoder, "this run's label encoder"), label_encoder
    if not os.path.isfile(str(train_annotation)):
        raise PretrainedError(
            f"init_from: this run's training manifest {train_annotation} does not exist; a fine-tuning run trains "
            "on the source run's prepared data: use the source run's output_root (its manifests folder)"
        )
    encoder = CategoricalEncoder()  # built as speechbrain_ext.data.speaker_label_encoder builds it
    encoder.update_from_didataset(sx_data.load_dataset(train_annotation, ""), "spk_id")
    return encoder.lab2ind, train_annotation


def check_same_speakers(source, here, source_name, here_name):
    """Raise unless ``source`` and ``here`` (``{speaker: class}``) are the same speakers in the same classes.

    Example
    -------
    >>> check_same_speakers({"a": 0, "b": 1}, {"a": 0, "b": 1}, "src", "run")
    >>> check_same_speakers({"a": 0, "b": 1}, {"a": 0, "c": 1, "d": 2}, "src", "run")
    Traceback (most recent call last):
    ...
    speechbrain_ext.pretrained.PretrainedError: init_from: another speaker set: src has 2 speakers, run has 3; \
1 only in the source (first 'b'), 2 only in this run (first 'c'); ...
    >>> check_same_speakers({"a": 0, "b": 1}, {"b": 0, "a": 1}, "src", "run")
    Traceback (most recent call last):
    ...
    speechbrain_ext.pretrained.PretrainedError: init_from: the same 2 speakers in another order: 'a' is class 0 ...
    """
    hint = ("the classifier's rows are the source run's speakers: train on the same manifest (the source run's "
            "output_root / manifest_folder)")
    only_source = [s for s in source if s not in here]
    only_here = [s for s in here if s not in source]
    if only_source or only_here:
        parts = [f"{len(only_source)} only in the source" + (f" (first {only_source[0]!r})" if only_source else ""),
                 f"{len(only_here)} only in this run" + (f" (first {only_here[0]!r})" if only_here else "")]
        raise PretrainedError(
            f"init_from: another speaker set: {source_name} has {len(source)} speakers, {here_name} has "
            f"{len(here)}; {', '.join(parts)}; {hint}"
        )
    moved = [s for s in source if source[s] != here[s]]
    if moved:
        first = moved[0]
        raise PretrainedError(
            f"init_from: the same {len(source)} speakers in another order: {first!r} is class {source[first]} in "
            f"{source_name} but {here[first]} in {here_name} ({len(moved)} speakers moved); {hint}"
        )


def init_from_run(modules, path, train_annotation, label_encoder=None, output_folder=None):
    """Continue a trained run: copy its best checkpoint's encoder, normaliser AND classifier into ``modules``.

    For fine-tuning stages on the same speakers (large-margin fine-tuning,
    ``recipes/shared_hparams/large_margin.yaml``). Before anything is copied: the
    source's speakers (its ``save/label_encoder.txt``) must be this run's, class for
    class, and every tensor of ``embedding_model`` and ``classifier`` must exist with
    the same shape (the error names the tensor and both shapes). Not copied: the
    optimiser, epoch counter, sampler and RNG states (a new stage starts them anew).
    Like :func:`load_pretrained_encoder` this runs when the hparams are loaded, before
    the Brain recovers its own checkpoints, so a resumed stage continues from those.

    Arguments
    ---------
    modules : dict
        The recipe's ``modules`` (``embedding_model``, ``classifier``, optionally ``mean_var_norm``).
    path : str
        The source run (see :func:`find_run_checkpoint`).
    train_annotation : str
        This run's training manifest (its speakers are compared with the source's).
    label_encoder : str, optional
        This run's ``label_encoder.txt``; when it exists (a resumed run) it is what is compared.
    output_folder : str, optional
        This run's output folder (must not overlap the source).

    Returns
    -------
    dict
        ``{part: file}`` of what was loaded.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> src = tempfile.mkdtemp(); ckpt = os.path.join(src, "save", "CKPT+1"); os.makedirs(ckpt)
    >>> _ = open(os.path.join(ckpt, "CKPT.yaml"), "w").write("EER: 3.0\\n")
    >>> enc, cls = torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)
    >>> torch.save(enc.state_dict(), os.path.join(ckpt, "embedding_model.ckpt"))
    >>> torch.save(cls.state_dict(), os.path.join(ckpt, "classifier.ckpt"))
    >>> labels = CategoricalEncoder(); labels.update_from_iterable(["s1", "s2"])
    >>> labels.save(os.path.join(src, "save", "label_encoder.txt"))
    >>> manifest = os.path.join(src, "train.csv")
    >>> _ = open(manifest, "w").write("ID,duration,wav,spk_id\\nu1,1,a.wav,s1\\nu2,1,b.wav,s2\\n")
    >>> modules = {"embedding_model": torch.nn.Linear(3, 2), "classifier": torch.nn.Linear(2, 2)}
    >>> sorted(init_from_run(modules, src, manifest))
    ['classifier', 'embedding_model']
    >>> bool(torch.equal(modules["classifier"].weight, cls.weight))
    True
    >>> init_from_run({**modules, "classifier": torch.nn.Linear(2, 5)}, src, manifest)
    Traceback (most recent call last):
    ...
    speechbrain_ext.pretrained.PretrainedError: init_from: ... weight: (2, 2) in the file vs (5, 2) here...
    """
    checkpoint, source_labels = find_run_checkpoint(path, output_folder)
    if not os.path.isfile(source_labels):
        raise PretrainedError(f"init_from: the source run has no {source_labels} (the classifier's speakers)")
    here, here_name = _run_speakers(train_annotation, label_encoder)
    check_same_speakers(_read_label_encoder(source_labels, "the source run's speakers"), here,
                        source_labels, here_name)
    hint = "the fine-tuning system must build the source run's architecture (same encoder, channels, emb_dim, n_mels)"
    states, files = {}, {}
    for part, name in RUN_PARTS.items():
        file = os.path.join(checkpoint, name)
        if part == "mean_var_norm":
            if os.path.isfile(file) and modules.get(part) is not None:
                files[part] = file
            continue
        if not os.path.isfile(file):
            raise PretrainedError(f"init_from: checkpoint {checkpoint} has no {name}")
        states[part] = _checked_state(modules[part], file, "init_from", part, hint)
        files[part] = file
    for part, state in states.items():
        modules[part].load_state_dict(state, strict=True)
    if "mean_var_norm" in files and not _load_statistics(modules["mean_var_norm"], files["mean_var_norm"]):
        del files["mean_var_norm"]
    logger.info("init_from: loaded %s from %s", ", ".join(sorted(files)), checkpoint)
    return files
