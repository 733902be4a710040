"""Load a training checkpoint into the modules the inference YAML builds, strictly and safely.

Every state dict is read with ``torch.load(weights_only=True)`` (no pickle can run),
with SpeechBrain's own key renames applied, and must match the module built from
the hyperparameters key for key and shape for shape: the error names the first
key that differs.
"""

import os

import torch

from speechbrain_ext.publish.experiment import plain, recoverable_names
from speechbrain_ext.publish.layout import HPARAMS, PublishError
from speechbrain_ext.speed_perturb import expand_label_encoder

__all__ = ["is_statistics", "load_checked", "load_modules", "load_state", "read_label_encoder"]


def load_state(path):
    """A state dict read with ``weights_only=True`` (SpeechBrain's key renames applied).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "m.ckpt")
    >>> torch.save(torch.nn.Linear(2, 1).state_dict(), p)
    >>> sorted(load_state(p))
    ['bias', 'weight']
    >>> torch.save([1, 2], p)
    >>> load_state(p)
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: .../m.ckpt: not a state dict (got list)
    """
    from speechbrain.utils.checkpoints import hook_on_loading_state_dict_checkpoint

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise PublishError(f"{path}: cannot be loaded with torch.load(weights_only=True): {err}") from err
    if not isinstance(state, dict):
        raise PublishError(f"{path}: not a state dict (got {type(state).__name__})")
    return hook_on_loading_state_dict_checkpoint(state)


def _own_loader(module):
    """The checkpoint loader a class registered with SpeechBrain (``@mark_as_loader``), else None."""
    from speechbrain.utils.checkpoints import DEFAULT_LOAD_HOOKS, get_default_hook, torch_recovery

    hook = get_default_hook(module, DEFAULT_LOAD_HOOKS)
    return None if hook is None or hook is torch_recovery else hook


def is_statistics(module):
    """Whether a module is saved as running statistics rather than a state dict (``InputNormalization``).

    Such a module registers its own checkpoint loader with SpeechBrain; its file is
    loaded through that loader and copied as it is.

    Example
    -------
    >>> from speechbrain.processing.features import InputNormalization
    >>> is_statistics(InputNormalization()), is_statistics(torch.nn.Linear(2, 2))
    (True, False)
    """
    return _own_loader(module) is not None


def _shape(t):
    return list(t.shape) if hasattr(t, "shape") else type(t).__name__


def load_checked(module, path, key):
    """Load ``path`` into ``module`` strictly; the error names the first mismatched key or shape.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "m.ckpt")
    >>> torch.save(torch.nn.Linear(2, 3).state_dict(), p)
    >>> load_checked(torch.nn.Linear(2, 4), p, "classifier")
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: checkpoint ...: key 'weight' has shape [3, 2] in the checkpoint but ...
    """
    state = load_state(path)
    expected = module.state_dict()
    where = f"checkpoint {path} does not match the hparams' {key} ({type(module).__name__})"
    for name, value in state.items():
        if name not in expected:
            raise PublishError(
                f"{where}: unexpected key {name!r} (shape {_shape(value)}) not in the model built from {HPARAMS}"
            )
        if _shape(value) != _shape(expected[name]):
            raise PublishError(
                f"{where}: key {name!r} has shape {_shape(value)} in the checkpoint but "
                f"{_shape(expected[name])} in the model built from {HPARAMS}"
            )
    for name, value in expected.items():
        if name not in state:
            raise PublishError(f"{where}: key {name!r} (shape {_shape(value)}) is missing from the checkpoint")
    module.load_state_dict(state, strict=True)
    return module


def load_modules(hp, modules, loadables, ckpt_path):
    """Load the checkpoint files of ``modules`` (built from the inference YAML) in place; eval mode.

    The files are found by the names the training checkpointer saved the modules
    under (its ``recoverables``; ``mean_var_norm`` defaults to ``normalizer``).

    Arguments
    ---------
    hp : dict
        The experiment's hyperparameters (round-trip mapping).
    modules : dict
        ``{key: module}`` built from the inference YAML.
    loadables : list of str
        The ``Pretrainer`` loadables; those among ``modules`` are loaded.
    ckpt_path : str
        The checkpoint folder.

    Returns
    -------
    dict
        ``{key: checkpoint file}`` of the modules loaded.

    Example
    -------
    >>> import tempfile
    >>> ckpt = tempfile.mkdtemp()
    >>> torch.save(torch.nn.Linear(2, 2).state_dict(), os.path.join(ckpt, "embedding_model.ckpt"))
    >>> load_modules({}, {"embedding_model": torch.nn.Linear(2, 2)}, ["embedding_model"], ckpt)
    {'embedding_model': '.../embedding_model.ckpt'}
    >>> load_modules({}, {"classifier": torch.nn.Linear(2, 2)}, ["classifier"], ckpt)
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: checkpoint ... has no classifier.ckpt for 'classifier' (files: ...)
    """
    names = recoverable_names(hp)
    names.setdefault("mean_var_norm", "normalizer")
    sources = {}
    for key in [k for k in loadables if k in modules]:
        path = os.path.join(ckpt_path, f"{names.get(key, key)}.ckpt")
        if not os.path.isfile(path):
            raise PublishError(f"checkpoint {ckpt_path} has no {os.path.basename(path)} for {key!r} "
                               f"(files: {', '.join(sorted(os.listdir(ckpt_path)))})")
        if is_statistics(modules[key]):
            load_state(path)  # must be readable with weights_only=True
            _own_loader(modules[key])(modules[key], path, False)
        else:
            load_checked(modules[key], path, key)
        sources[key] = path
    for module in modules.values():
        if isinstance(module, torch.nn.Module):
            module.eval()
    return sources


def read_label_encoder(experiment_dir, hp):
    """``save/label_encoder.txt`` of the experiment, checked against the classifier's size.

    A run trained with speed perturbation (``speed_perturb`` set, each perturbed speaker a new
    class) has ``len(speeds)`` classes per speaker: its encoder is expanded to name every
    output (:func:`speechbrain_ext.speed_perturb.expand_label_encoder`).

    Returns
    -------
    speechbrain.dataio.encoder.CategoricalEncoder
        One label per output of the classifier.

    Example
    -------
    >>> read_label_encoder("/nonexistent/exp", {})
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: /nonexistent/exp has no save/label_encoder.txt (the classifier's ...
    """
    from speechbrain.dataio.encoder import CategoricalEncoder

    label_src = os.path.join(experiment_dir, "save", "label_encoder.txt")
    if not os.path.isfile(label_src):
        raise PublishError(f"{experiment_dir} has no save/label_encoder.txt (the classifier's speakers)")
    encoder = CategoricalEncoder()
    try:
        encoder.load(label_src)
    except Exception as err:
        raise PublishError(f"{label_src}: not a label encoder file: {err}") from err
    n_out = plain(hp["classifier"]).get("out_neurons") if isinstance(hp.get("classifier"), dict) else None
    perturb = plain(hp["speed_perturb"]) if isinstance(hp.get("speed_perturb"), dict) else {}
    speeds = perturb.get("speeds") or [1.0]
    if n_out is not None and len(encoder) * len(speeds) != int(n_out):
        per_speaker = f" x {len(speeds)} speeds (speed_perturb)" if len(speeds) > 1 else ""
        raise PublishError(f"{label_src} has {len(encoder)} speakers{per_speaker} but the classifier has "
                           f"out_neurons={n_out}")
    return expand_label_encoder(encoder, speeds) if len(speeds) > 1 else encoder
