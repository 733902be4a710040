"""Publish a trained experiment as a SpeechBrain speaker model: a local folder, then a Hub repo.

::

    python -m speechbrain_ext.hub export <experiment_dir> <out_dir> [--onnx] [--checkpoint NAME]
                                         [--overwrite] [--repo-id USER/NAME] [--metrics PATH]
    python -m speechbrain_ext.hub push <out_dir> --repo-id USER/NAME [--private] [--revision REV]
                                       [--dry-run] [--overwrite]

``export`` writes the layout of SpeechBrain's own speaker models (as
``speechbrain/spkrec-ecapa-voxceleb``), loadable offline from any folder it is copied
to, or from the Hub once pushed::

    SpeakerRecognition.from_hparams(source=<folder or repo id>, savedir=<tmp>)

* ``hyperparams.yaml``: the inference hyperparameters. The model blocks
  (``compute_features``, ``mean_var_norm``, ``embedding_model``, ``classifier``,
  ``mean_var_norm_emb`` where trained) are copied from the experiment's composed
  ``hyperparams.yaml``; a ``Pretrainer`` loads each loadable ``<name>`` from
  ``<source>/<name>.ckpt``, i.e. next to the YAML, wherever it lives (no path of the
  training machine is written);
* ``embedding_model.ckpt``, ``classifier.ckpt`` (state dicts of the chosen checkpoint,
  lowest validation EER unless ``--checkpoint``), ``mean_var_norm.ckpt`` (global
  feature normalisation only) and ``mean_var_norm_emb.ckpt`` where used;
* ``label_encoder.txt`` (the training speakers) and ``label_encoder.ckpt``, the same
  file under the name the ``Pretrainer`` looks for;
* ``verification.json``: the decision threshold (the EER threshold of the evaluation
  trials), read by ``python -m speechbrain_ext.verify``;
* ``export.json``: provenance (checkpoint, validation EER, epoch) and the marker that
  lets a later export replace this folder;
* ``README.md``: the model card (Hub front matter with ``model-index``, results,
  threshold, usage, training configuration, citations);
* with ``--onnx``: ``embedding.onnx`` and ``embedding.torchscript.pt``, waveform →
  embedding (see :mod:`speechbrain_ext.export`), checked against the PyTorch model.

The folder is built in a temporary sibling directory, checked (strict state-dict load,
then a reload through ``EncoderClassifier.from_hparams`` whose embeddings must equal the
checkpoint's) and renamed into place. ``push`` uploads it with ``huggingface_hub``
(``create_repo`` + ``upload_folder``) using the token of ``hf auth login`` or ``HF_TOKEN``.
"""

import argparse
import contextlib
import datetime
import getpass
import glob
import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile

import ruamel.yaml
import torch
import yaml

__all__ = [
    "HubError",
    "export_model",
    "find_checkpoint",
    "is_export",
    "main",
    "push_model",
    "read_threshold",
]

MARKER = "speechbrain_ext.hub"
EXPORT_INFO = "export.json"
VERIFICATION = "verification.json"
CARD = "README.md"
HPARAMS = "hyperparams.yaml"
ONNX_FILE = "embedding.onnx"
TORCHSCRIPT_FILE = "embedding.torchscript.pt"
#: Largest |difference| allowed between an exported ONNX / TorchScript embedding and PyTorch's.
PARITY_TOLERANCE = 1e-4
#: Largest |difference| allowed between the reloaded export and the checkpoint's modules.
RELOAD_TOLERANCE = 1e-5
REQUIRED_KEYS = ("compute_features", "mean_var_norm", "embedding_model")
OPTIONAL_KEYS = ("classifier", "mean_var_norm_emb")
# Files a previous push may have left in a repo without making it "other content".
_HUB_OWN_FILES = {".gitattributes"}


class HubError(RuntimeError):
    """An export, push or load cannot proceed; the message names the file, key or folder.

    Example
    -------
    >>> str(HubError("no checkpoint in exp/"))
    'no checkpoint in exp/'
    """


# ----------------------------------------------------------------------------- experiment


def find_checkpoint(experiment_dir, checkpoint=None):
    """The checkpoint folder to export and its meta: the lowest ``EER``, or the one named.

    Arguments
    ---------
    experiment_dir : str
        A training output folder (``<exp>/save/CKPT+*/CKPT.yaml``).
    checkpoint : str or None
        A checkpoint folder name under ``save/`` (``CKPT+...``) or a path to one.

    Returns
    -------
    path : str
    meta : dict
        The ``CKPT.yaml`` contents (``EER`` in %, ``epoch``...).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> for name, eer in (("CKPT+a", 20.0), ("CKPT+b", 10.0)):
    ...     os.makedirs(os.path.join(d, "save", name))
    ...     _ = open(os.path.join(d, "save", name, "CKPT.yaml"), "w").write(f"EER: {eer}\\nepoch: 1\\n")
    >>> path, meta = find_checkpoint(d)
    >>> os.path.basename(path), meta["EER"]
    ('CKPT+b', 10.0)
    >>> find_checkpoint(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    speechbrain_ext.hub.HubError: no checkpoint in ...: expected save/CKPT+*/CKPT.yaml (train first)
    """
    save = os.path.join(experiment_dir, "save")
    found = sorted(
        d for d in glob.glob(os.path.join(glob.escape(save), "CKPT*")) if os.path.isfile(os.path.join(d, "CKPT.yaml"))
    )
    if checkpoint is not None:
        path = checkpoint if os.path.isdir(checkpoint) else os.path.join(save, checkpoint)
        if not os.path.isfile(os.path.join(path, "CKPT.yaml")):
            names = ", ".join(os.path.basename(d) for d in found) or "none"
            raise HubError(f"checkpoint {checkpoint!r} not found in {save} (checkpoints there: {names})")
        return path, _read_meta(path)
    if not found:
        raise HubError(f"no checkpoint in {experiment_dir}: expected save/CKPT+*/CKPT.yaml (train first)")
    metas = {d: _read_meta(d) for d in found}

    def rank(d):
        eer = metas[d].get("EER")
        return (float(eer) if isinstance(eer, int | float) else math.inf, -float(metas[d].get("unixtime", 0)))

    best = min(found, key=rank)
    return best, metas[best]


def _read_meta(path):
    with open(os.path.join(path, "CKPT.yaml")) as f:
        meta = yaml.safe_load(f) or {}
    return meta if isinstance(meta, dict) else {}


def _read_hparams(experiment_dir):
    """The experiment's ``hyperparams.yaml`` as a round-trip mapping (tags kept, ``!ref`` resolved)."""
    from hyperpyyaml import resolve_references

    path = os.path.join(experiment_dir, HPARAMS)
    if not os.path.isdir(experiment_dir):
        raise HubError(f"experiment folder not found: {experiment_dir}")
    if not os.path.isfile(path):
        raise HubError(f"{experiment_dir} has no {HPARAMS}: not a training output folder")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        resolved = resolve_references(text).getvalue()
        node = ruamel.yaml.YAML().load(resolved)
    except Exception as err:  # ruamel / hyperpyyaml raise many types
        raise HubError(f"{path}: cannot be read: {type(err).__name__}: {err}") from err
    if not isinstance(node, dict):
        raise HubError(f"{path}: the top level must be a mapping")
    for key in REQUIRED_KEYS:
        if not _tag(node.get(key)):
            raise HubError(f"{path}: no {key!r} module (a '!new:' entry) to export")
    return node


def _tag(node):
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", None) if tag is not None else None
    return value if isinstance(value, str) and value.startswith("!") else None


def _plain(node):
    """Ruamel node → plain Python (tags dropped, tagged scalars as ``'!tag value'``)."""
    from ruamel.yaml.comments import TaggedScalar
    from ruamel.yaml.scalarbool import ScalarBoolean

    if isinstance(node, TaggedScalar):
        return f"{node.tag.value} {node.value}".strip()
    if isinstance(node, ScalarBoolean | bool):
        return bool(node)
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node if node is None else str(node)


def _scalar(value):
    """A YAML scalar for ``value`` (plain Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return ".nan" if value != value else (".inf" if value > 0 else "-.inf")
    return json.dumps(str(value))


def _flow(node):
    """Inline YAML for a value (lists of scalars, tagged scalars)."""
    from ruamel.yaml.comments import TaggedScalar

    if isinstance(node, TaggedScalar):
        return f"{node.tag.value} {_scalar(_plain(node.value)) if node.value else ''}".strip()
    if isinstance(node, list | tuple):
        tag = _tag(node)
        body = "[" + ", ".join(_flow(v) for v in node) + "]"
        return f"{tag} {body}" if tag else body
    if isinstance(node, dict):
        tag = _tag(node)
        body = "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in node.items()) + "}"
        return f"{tag} {body}" if tag else body
    return _scalar(_plain(node))


def _emit(key, node, indent=0):
    """YAML lines for ``key: node``, block style for mappings, no anchors or comments."""
    pad = " " * indent
    if isinstance(node, dict):
        tag = _tag(node)
        lines = [f"{pad}{key}:{' ' + tag if tag else ''}" + (" {}" if not node else "")]
        for k, v in node.items():
            lines += _emit(k, v, indent + 2)
        return lines
    return [f"{pad}{key}: {_flow(node)}"]


def _class_paths(node):
    """Every ``!new:``/``!name:``/``!apply:`` target inside ``node``."""
    out = []
    tag = _tag(node)
    if tag and ":" in tag:
        out.append(tag.split(":", 1)[1])
    if isinstance(node, dict):
        for v in node.values():
            out += _class_paths(v)
    elif isinstance(node, list | tuple):
        for v in node:
            out += _class_paths(v)
    return out


def _recoverable_names(hp):
    """``{module key: checkpoint file stem}`` from the experiment's checkpointer recoverables."""
    names = {}
    recoverables = (hp.get("checkpointer") or {}).get("recoverables") or {}
    for name, obj in recoverables.items():
        for key in REQUIRED_KEYS + OPTIONAL_KEYS:
            if key in hp and hp[key] is obj:
                names.setdefault(key, name)
    return names


# ----------------------------------------------------------------------------- inference YAML


def _norm_has_stats(node):
    """Whether an ``InputNormalization`` block keeps running statistics (``norm_type: global``)."""
    args = _plain(node) if isinstance(node, dict) else {}
    return isinstance(args, dict) and args.get("norm_type", "global") == "global"


def _inference_yaml(hp, parts, system):
    """The ``hyperparams.yaml`` of the export; ``parts`` = module keys present, in order."""
    sample_rate = _plain(hp.get("sample_rate", 16000))
    lines = [
        "# " + "#" * 76,
        f"# Speaker embeddings ({system}, ECAPA-TDNN), exported by {MARKER} from a",
        "# speechbrain_ext training run. Inference with SpeechBrain:",
        "#   from speechbrain.inference.speaker import SpeakerRecognition",
        "#   model = SpeakerRecognition.from_hparams(source=<this folder or Hub repo id>, savedir=...)",
        "# The Pretrainer has no `paths`: each loadable <name> is read from <source>/<name>.ckpt,",
        "# i.e. next to this file, whatever folder or repo the model was copied to.",
        "# Model blocks are copied from the training hyperparameters.",
        "# " + "#" * 76,
        "",
        f"sample_rate: {_scalar(sample_rate)}",
        "",
        "# Resampling and down-mixing of the input audio (load_audio, verify_files).",
        "audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer",
        f"  sample_rate: {_scalar(sample_rate)}",
        "",
    ]
    for key in parts:
        lines += _emit(key, hp[key]) + [""]
    has_classifier = "classifier" in parts
    if has_classifier:
        lines += ["label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder", ""]
    lines += ["modules:"] + [f"  {key}: !ref <{key}>" for key in parts] + [""]
    loadables = ["embedding_model"]
    if "mean_var_norm" in parts and _norm_has_stats(hp["mean_var_norm"]):
        loadables.insert(0, "mean_var_norm")
    if "mean_var_norm_emb" in parts:
        loadables.append("mean_var_norm_emb")
    if has_classifier:
        loadables += ["classifier", "label_encoder"]
    lines += ["pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer", "  loadables:"]
    lines += [f"    {name}: !ref <{name}>" for name in loadables]
    return "\n".join(lines) + "\n", loadables


# ----------------------------------------------------------------------------- checkpoints


def _load_state(path):
    """A state dict read with ``weights_only=True`` (SpeechBrain's key renames applied)."""
    from speechbrain.utils.checkpoints import hook_on_loading_state_dict_checkpoint

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise HubError(f"{path}: cannot be loaded with torch.load(weights_only=True): {err}") from err
    if not isinstance(state, dict):
        raise HubError(f"{path}: not a state dict (got {type(state).__name__})")
    return hook_on_loading_state_dict_checkpoint(state)


def _is_statistics(module):
    """Modules saved as running statistics rather than a state dict (``InputNormalization``)."""
    return hasattr(module, "_statistics_dict") and hasattr(module, "_load")


def _shape(t):
    return list(t.shape) if hasattr(t, "shape") else type(t).__name__


def _load_checked(module, path, key):
    """Load ``path`` into ``module`` strictly; the error names the first mismatched key or shape."""
    state = _load_state(path)
    expected = module.state_dict()
    where = f"checkpoint {path} does not match the hparams' {key} ({type(module).__name__})"
    for name, value in state.items():
        if name not in expected:
            raise HubError(
                f"{where}: unexpected key {name!r} (shape {_shape(value)}) not in the model built from {HPARAMS}"
            )
        if _shape(value) != _shape(expected[name]):
            raise HubError(
                f"{where}: key {name!r} has shape {_shape(value)} in the checkpoint but "
                f"{_shape(expected[name])} in the model built from {HPARAMS}"
            )
    for name, value in expected.items():
        if name not in state:
            raise HubError(f"{where}: key {name!r} (shape {_shape(value)}) is missing from the checkpoint")
    module.load_state_dict(state, strict=True)
    return module


# ----------------------------------------------------------------------------- metrics, card


def _find_metrics(experiment_dir, hp, metrics_path=None):
    if metrics_path is not None:
        if not os.path.isfile(metrics_path):
            raise HubError(f"metrics file not found: {metrics_path}")
        candidates = [metrics_path]
    else:
        candidates = [os.path.join(experiment_dir, "report", "metrics.json")]
        report = _plain(hp.get("report_folder"))
        if isinstance(report, str):
            candidates.append(os.path.join(report, "metrics.json"))
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(experiment_dir)), "metrics.json"))
    for path in candidates:
        if os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as f:
                    metrics = json.load(f)
            except (OSError, ValueError) as err:
                raise HubError(f"{path}: not a readable metrics.json: {err}") from err
            if not isinstance(metrics, dict) or not metrics.get("conditions"):
                raise HubError(f"{path}: no 'conditions' (expected the metrics.json of speechbrain_ext.report)")
            return path, metrics
    raise HubError(
        f"no metrics.json for {experiment_dir} (looked in report/, the report_folder and the parent folder): "
        "the evaluation of the training run writes it; or pass --metrics"
    )


def _threshold(metrics):
    conditions = metrics["conditions"]
    name = "all" if "all" in conditions else next(iter(conditions))
    cond = conditions[name]
    if "eer_threshold" not in cond:
        raise HubError(f"metrics.json condition {name!r} has no eer_threshold")
    return name, float(cond["eer_threshold"])


_ABS_PATH = re.compile(r"^(?:/|~|[A-Za-z]:[\\/]|\\\\)")


def _sanitize_command(command):
    """The training command without the training machine's paths.

    Example
    -------
    >>> _sanitize_command("python ../u/recipes/X/train.py /home/u/recipes/X/h.yaml --data /d/x --out ../r --n 3")
    'python recipes/X/train.py recipes/X/h.yaml --data <path> --out <path> --n 3'
    """
    out = []
    for token in str(command).split():
        path = token.replace("\\", "/")
        index = path.rfind("/recipes/")
        if index >= 0:
            token = path[index + 1 :]
        elif _ABS_PATH.match(token) or "../" in path or path.startswith(".."):
            token = "<path>"
        out.append(token)
    return " ".join(out)


def _corpus(hp, metrics):
    """The corpus name from the recipe path (``recipes/<Corpus>/``), else the data folder's name."""
    for text in (str(metrics.get("command", "")), str(metrics.get("title", ""))):
        match = re.search(r"recipes/([A-Za-z0-9_.-]+)/", text)
        if match:
            return match.group(1)
    data = _plain(hp.get("data_folder"))
    return os.path.basename(os.path.normpath(data)) if isinstance(data, str) and data else "unknown"


def _short_class(path):
    return str(path).rsplit(".", 1)[-1]


def _call_repr(node):
    """``ClassName(arg=value, ...)`` of a tagged mapping (scalar arguments only)."""
    args = _plain(node) if isinstance(node, dict) else {}
    inner = ", ".join(f"{k}={v}" for k, v in args.items() if not isinstance(v, dict | list))
    name = _short_class(_tag(node).split(":", 1)[1])
    return f"{name}({inner})" if inner else name


def _describe_losses(hp):
    """``[(row name, description)]`` of the loss terms, their balancing and the method's modules."""
    plain = {k: _plain(v) for k, v in hp.items() if isinstance(k, str)}
    balancer = hp.get("loss_balancer")
    args = _plain(balancer) if isinstance(balancer, dict) else {}
    weights = dict(args.get("weights") or {}) if isinstance(args.get("weights"), dict) else {}
    for group in (args.get("groups") or {}).values() if isinstance(args.get("groups"), dict) else []:
        if isinstance(group, dict):
            weights.update(group)
    if not weights:  # a balancer without fixed weights (MGDA): the terms the YAML defines
        weights = {k[: -len("_loss")]: None for k in hp if isinstance(k, str) and k.endswith("_loss") and _tag(hp[k])}
    rows = []
    for name, weight in weights.items():
        if name.startswith("aam"):
            desc = f"AAM-softmax (margin {plain.get('aam_margin', '?')}, scale {plain.get('aam_scale', '?')})"
            if name != "aam":
                desc += " on the CopyPaste inputs" if "parallel" in name else ""
        else:
            node = next((hp[k] for k in (f"{name}_loss", name) if _tag(hp.get(k))), None)
            desc = _call_repr(node) if node is not None else name
        rows.append((f"loss: {name}", desc + ("" if weight is None else f", weight {weight}")))
    if isinstance(balancer, dict) and _tag(balancer):
        inner = balancer.get("inner")
        text = _call_repr(balancer) if not inner else f"{_call_repr(balancer)} of {_call_repr(inner)}"
        rows.append(("loss balancing", text))
    for key, label in (("class_aware_attention", "class-aware attention"), ("copypaste", "CopyPaste"),
                       ("emotion_mask", "emotion-aware masking")):
        if _tag(hp.get(key)):
            rows.append((label, _call_repr(hp[key])))
    return rows


def _config_rows(hp, meta, n_params, corpus):
    p = {k: _plain(v) for k, v in hp.items() if isinstance(k, str)}
    enc = p.get("embedding_model") if isinstance(p.get("embedding_model"), dict) else {}
    feats = p.get("compute_features") if isinstance(p.get("compute_features"), dict) else {}
    norm = p.get("mean_var_norm") if isinstance(p.get("mean_var_norm"), dict) else {}
    channels = enc.get("channels", [])
    width = channels[0] if isinstance(channels, list) and channels else "?"
    rows = [
        ("system", f"`{p.get('system', '?')}`"),
        ("training data", f"{corpus}, {p.get('n_speakers', p.get('n_train_speakers', '?'))} training speakers"),
        ("features", f"{feats.get('n_mels', 40)} log-Mel filterbanks (25 ms / 10 ms), "
                     f"{norm.get('norm_type', 'global')} mean normalisation"
                     + ("" if norm.get("std_norm", True) is False else " + variance")),
        ("encoder", f"ECAPA-TDNN, width C={width} (channels {channels}), attention channels "
                    f"{enc.get('attention_channels', 128)}, {n_params / 1e6:.2f} M parameters"),
        ("embedding", f"{enc.get('lin_neurons', 192)} dimensions, cosine scoring"),
    ]
    rows += _describe_losses(hp)
    opt = hp.get("opt_class")
    opt_name = _short_class(_tag(opt).split(":", 1)[1]) if _tag(opt) else "?"
    rows += [
        ("optimiser", f"{opt_name}, lr {p.get('lr', '?')} → {p.get('lr_final', '?')}, "
                      f"weight decay {p.get('weight_decay', '?')}"),
        ("batches", f"{p.get('batch_size', '?')} crops of {p.get('crop_seconds', '?')} s"
                    + (f", {_call_repr(hp['train_sampler'])}" if _tag(hp.get("train_sampler")) else "")),
        ("epochs", f"{p.get('number_of_epochs', '?')} (checkpoint of epoch {meta.get('epoch', '?')}, "
                   f"lowest validation EER {meta.get('EER', '?')} %)"),
    ]
    aug = hp.get("wav_augment")
    if isinstance(aug, dict) and _tag(aug):
        names = [_short_class(c) for c in _class_paths(aug.get("augmentations", []))]
        rows.append(("augmentation", ", ".join(names) or _short_class(_tag(aug).split(":", 1)[1])))
    rows.append(("seed", str(p.get("seed", "?"))))
    return rows


def _front_matter(corpus, metrics, name):
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    for cond, m in metrics["conditions"].items():
        common = dict(
            task_type="speaker-verification",
            task_name="Speaker Verification",
            dataset_type=corpus.lower(),
            dataset_name=f"{corpus} (evaluation trials)",
            dataset_config=str(cond),
            dataset_split="eval",
        )
        results.append(EvalResult(metric_type="eer", metric_value=round(100 * float(m["eer"]), 3),
                                  metric_name=f"EER (%), {cond}", **common))
        if "min_dcf" in m:
            p_target = m.get("min_dcf_p_target", 0.01)
            results.append(EvalResult(metric_type="min_dcf", metric_value=round(float(m["min_dcf"]), 4),
                                      metric_name=f"minDCF (p_target={p_target:g}), {cond}", **common))
    data = ModelCardData(
        library_name="speechbrain",
        license="apache-2.0",
        tags=["speaker-verification", "speaker-recognition", "speaker-embeddings", "speechbrain", "ECAPA-TDNN",
              "pytorch", "audio"],
        datasets=[corpus],
        metrics=["eer", "min_dcf"],
        model_name=name,
        eval_results=results,
    )
    return data.to_yaml()


_CITATIONS = """\
```bibtex
@inproceedings{li2023discriminative,
  title={Discriminative Speaker Representation via Contrastive Learning with Class-Aware Attention in Angular Space},
  author={Li, Zhe and Mak, Man-Wai and Meng, Helen},
  booktitle={ICASSP}, year={2023}, note={arXiv:2210.16622}
}
@article{tian2025emotion,
  title={Learning Emotion-Invariant Speaker Representations for Speaker Verification},
  author={Tian, Jingguang and Hu, Xinhui and Xu, Xinkang},
  journal={arXiv preprint arXiv:2505.18498}, year={2025}
}
@article{speechbrain_v1,
  title={Open-Source Conversational AI with SpeechBrain 1.0},
  author={Ravanelli, Mirco and Parcollet, Titouan and Moumen, Adel and de Langen, Sylvain and Subakan, Cem
          and Plantinga, Peter and Wang, Yingzhi and Mousavi, Pooneh and Della Libera, Luca
          and Ploujnikov, Artem and others},
  journal={Journal of Machine Learning Research}, year={2024}, note={arXiv:2407.00463}
}
@misc{speechbrain,
  title={SpeechBrain: A General-Purpose Speech Toolkit},
  author={Ravanelli, Mirco and Parcollet, Titouan and Plantinga, Peter and Rouhe, Aku and Cornell, Samuele
          and Lugosch, Loren and Subakan, Cem and Dawalatabad, Nauman and Heba, Abdelwahab and Zhong, Jianyuan
          and others},
  year={2021}, eprint={2106.04624}, archivePrefix={arXiv}
}
```
"""


def _model_card(info, hp, metrics, meta, n_params, files, repo_id):
    import speechbrain

    corpus = info["corpus"]
    system = info["system"]
    name = repo_id.split("/")[-1] if repo_id else f"{system}-{corpus}".lower()
    source = repo_id or "path/to/this/folder"
    cond, threshold = info["threshold_condition"], info["threshold"]
    lines = ["---", _front_matter(corpus, metrics, name).strip(), "---", ""]
    lines += [
        f"# {name}: ECAPA-TDNN speaker verification ({corpus})",
        "",
        f"Speaker-embedding model (ECAPA-TDNN) for speaker verification, trained with the `{system}` system "
        f"of the speechbrain-ext-sv recipes on SpeechBrain "
        f"{speechbrain.__version__} and exported in SpeechBrain's layout: it loads with "
        "`SpeakerRecognition.from_hparams` / `EncoderClassifier.from_hparams`.",
        "",
    ]
    if corpus.lower() == "synthemo":
        lines += [
            "> **Trained on SynthEmo, a small synthetic corpus generated by the repository.** The numbers below "
            "measure this model on SynthEmo's evaluation trials only; they say nothing about real speech.",
            "",
        ]
    lines += ["## Results", "", f"Evaluation trials of {corpus} (speakers unseen in training), cosine scoring:", ""]
    lines += ["| condition | EER % | minDCF | EER threshold | #target | #nontarget |"]
    lines += ["|:---|---:|---:|---:|---:|---:|"]
    for c, m in metrics["conditions"].items():
        lines.append(
            f"| {c} | {100 * float(m['eer']):.2f} | {float(m.get('min_dcf', float('nan'))):.4f} | "
            f"{float(m.get('eer_threshold', float('nan'))):.4f} | {m.get('n_target', '-')} | "
            f"{m.get('n_nontarget', '-')} |"
        )
    p_target = next(iter(metrics["conditions"].values())).get("min_dcf_p_target", 0.01)
    lines += ["", f"minDCF: normalised detection cost at p_target = {p_target:g}.", ""]
    if info.get("metrics_checkpoint_mismatch"):
        lines += [f"> Note: {info['metrics_checkpoint_mismatch']}", ""]
    lines += [
        "## Decision threshold",
        "",
        f"Accept (same speaker) when the cosine score is **>= {threshold:.4f}**. This is the EER threshold of the "
        f"`{cond}` condition ({'every evaluation trial' if cond == 'all' else 'the first condition of the report'}) "
        "of the training run's `metrics.json`: the score at which false acceptances and false rejections are "
        f"equally frequent on {corpus}'s evaluation trials. It is stored in `verification.json`, which "
        "`python -m speechbrain_ext.verify` reads. A different domain needs its own threshold. "
        "SpeechBrain's `verify_files` returns a decision at its fixed default of 0.25; compare the score with "
        "this threshold instead.",
        "",
        "## Usage",
        "",
        "```python",
        "from speechbrain.inference.speaker import SpeakerRecognition",
        "",
        "verification = SpeakerRecognition.from_hparams(",
        f'    source="{source}", savedir="pretrained_models/{name}"',
        ")",
        'score, _ = verification.verify_files("speaker_a.wav", "speaker_b.wav")',
        f"same_speaker = float(score) >= {threshold:.4f}  # threshold from verification.json",
        "",
        "# embeddings [batch, 1, D] of 16 kHz waveforms [batch, samples]",
        "from speechbrain.inference.speaker import EncoderClassifier",
        "",
        f'encoder = EncoderClassifier.from_hparams(source="{source}", savedir="pretrained_models/{name}")',
        "embeddings = encoder.encode_batch(wavs, wav_lens)",
        "```",
        "",
        "or, with this repository installed:",
        "",
        "```bash",
        f"python -m speechbrain_ext.verify speaker_a.wav speaker_b.wav --model {source}",
        "```",
        "",
        "## Training configuration",
        "",
        "| | |",
        "|:---|:---|",
    ]
    for key, value in _config_rows(hp, meta, n_params, corpus):
        lines.append(f"| {key} | {str(value).replace('|', '/')} |")
    if info.get("command"):
        lines += ["", f"Command: `{info['command']}`"]
    lines += [""]
    if info.get("onnx"):
        par = info["onnx"]
        lines += [
            "## ONNX and TorchScript",
            "",
            f"`{ONNX_FILE}` (opset 17) and `{TORCHSCRIPT_FILE}` compute waveform → embedding in one graph "
            "(Fbank, mean normalisation, ECAPA-TDNN): inputs `wavs` float32 `[batch, samples]` at "
            f"{info['sample_rate']} Hz, zero-padded, and `wav_lens` float32 `[batch]` (relative lengths, 1.0 for the "
            "longest); output `embeddings` `[batch, D]`. Batch and length are dynamic. The ONNX graph computes the "
            "STFT as a convolution with a DFT kernel (ONNX has no complex type).",
            "",
            f"Parity with the PyTorch model at export (utterances of {', '.join(f'{s:g}' for s in par['seconds'])} s, "
            f"padded batch and one by one): ONNX max |diff| {par['onnx']['max_abs_diff']:.2e}, TorchScript "
            f"{par['torchscript']['max_abs_diff']:.2e} (tolerance {PARITY_TOLERANCE:g}; embedding values up to "
            f"{par['embedding_scale']:.2f}).",
            "",
            "```python",
            "import numpy as np, onnxruntime as ort",
            f'session = ort.InferenceSession("{ONNX_FILE}")',
            'emb = session.run(None, {"wavs": wavs.astype(np.float32), "wav_lens": np.ones(len(wavs), np.float32)})[0]',
            "```",
            "",
        ]
    if info.get("non_speechbrain_classes"):
        lines += [
            "## Requirements",
            "",
            "The model blocks use classes outside SpeechBrain: "
            + ", ".join(f"`{c}`" for c in info["non_speechbrain_classes"])
            + "; install this repository (`pip install -e .`) before loading.",
            "",
        ]
    lines += ["## Files", "", "| file | bytes |", "|:---|---:|"]
    lines += [f"| `{n}` | {s} |" for n, s in sorted(files.items())]
    lines += [
        f"| `{CARD}` | (this card) |",
        "",
        "`label_encoder.ckpt` is a copy of `label_encoder.txt` under the name SpeechBrain's Pretrainer loads.",
        "",
        "## Limitations",
        "",
        "- Trained on one corpus with few speakers; speaker verification on other data (channels, languages, "
        "emotions, durations) needs evaluation, and usually a new threshold, there.",
        "- Input: mono 16 kHz speech (other rates and channel counts are resampled / down-mixed by SpeechBrain's "
        "audio normaliser).",
        "",
        "## Citation",
        "",
        "The methods of this repository come from the two papers below; the model runs on SpeechBrain.",
        "",
        _CITATIONS,
        "## License",
        "",
        "Apache-2.0.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- leak check


def _identity_strings(experiment_dir):
    """Paths and names of this machine an export must not contain: ``[(kind, text)]``."""
    items = []
    for path in {os.path.abspath(experiment_dir), os.path.realpath(experiment_dir)}:
        if len(path) > 4:  # a very short path ("/e") would match ordinary text
            items.append(("path", path))
        parent = os.path.dirname(path)
        if parent not in ("/", "") and len(parent) > 4:
            items.append(("path", parent))
    home = os.path.expanduser("~")
    if home not in ("/", "~") and len(home) > 4:
        items.append(("path", home))
    names = {os.environ.get(v, "") for v in ("USER", "LOGNAME", "USERNAME")}
    with contextlib.suppress(Exception):
        names.add(getpass.getuser())
    with contextlib.suppress(OSError):
        names.add(os.getlogin())
    names.add(os.path.basename(home))
    items += [("user name", n) for n in sorted(names) if n and len(n) >= 3]
    return items


def _check_no_leaks(texts, experiment_dir):
    for kind, needle in _identity_strings(experiment_dir):
        word = r"(?<![A-Za-z0-9_-])" + re.escape(needle) + r"(?![A-Za-z0-9_-])"
        pattern = re.escape(needle) if kind == "path" else word
        for name, text in texts.items():
            if re.search(pattern, text):
                raise HubError(f"{name} would publish a {kind} of this machine ({needle!r}); nothing was written")


# ----------------------------------------------------------------------------- export


def is_export(folder):
    """Whether ``folder`` holds an export of this module (its ``export.json`` marker).

    Example
    -------
    >>> import tempfile
    >>> is_export(tempfile.mkdtemp())
    False
    """
    path = os.path.join(folder, EXPORT_INFO)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("exported_by") == MARKER
    except (OSError, ValueError, AttributeError):
        return False


def _write_json(path, payload):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, allow_nan=False)
        f.write("\n")


def _reload_check(folder, modules, sample_rate):
    """Embeddings of the folder loaded through SpeechBrain equal those of ``modules``."""
    import logging

    from speechbrain.inference.classifiers import EncoderClassifier

    from speechbrain_ext.export import _example_batch, reference_embeddings

    level = logging.getLogger("speechbrain").level
    logging.getLogger("speechbrain").setLevel(logging.WARNING)
    try:
        model = EncoderClassifier.from_hparams(source=folder, savedir=None, run_opts={"device": "cpu"})
    except Exception as err:
        raise HubError(f"the exported {HPARAMS} does not load with EncoderClassifier.from_hparams: {err}") from err
    finally:
        logging.getLogger("speechbrain").setLevel(level)
    wavs, lens = _example_batch(sample_rate, seconds=(1.0, 0.6))
    with torch.no_grad():
        got = model.encode_batch(wavs, lens)[:, 0]
    want = reference_embeddings(modules["compute_features"], modules["mean_var_norm"], modules["embedding_model"],
                                wavs, lens)
    diff = float((got - want).abs().max())
    if not diff <= RELOAD_TOLERANCE:
        raise HubError(f"the reloaded export differs from the checkpoint: max |diff| {diff:.3g} > {RELOAD_TOLERANCE}")
    return diff


def export_model(experiment_dir, out_dir, checkpoint=None, onnx=False, overwrite=False, repo_id=None,
                 metrics_path=None):
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

    Returns
    -------
    dict
        ``out_dir``, ``checkpoint``, ``valid_EER``, ``epoch``, ``threshold``,
        ``threshold_condition``, ``files`` (name → bytes), ``reload_max_abs_diff``,
        ``onnx`` (parity report or None), ``warnings``.

    Example
    -------
    >>> export_model("/nonexistent/exp", "/tmp/never")
    Traceback (most recent call last):
    ...
    speechbrain_ext.hub.HubError: experiment folder not found: /nonexistent/exp
    """
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.dataio.encoder import CategoricalEncoder

    experiment_dir = os.path.abspath(os.fspath(experiment_dir))
    out_dir = os.path.abspath(os.fspath(out_dir))
    hp = _read_hparams(experiment_dir)
    ckpt_path, meta = find_checkpoint(experiment_dir, checkpoint)
    if os.path.commonpath([out_dir, experiment_dir]) in (out_dir, experiment_dir):
        raise HubError(f"out_dir {out_dir} must not be the experiment folder, inside it, or contain it")
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise HubError(f"{out_dir} exists and is not a folder")
        if os.listdir(out_dir) and not is_export(out_dir) and not overwrite:
            raise HubError(
                f"{out_dir} is not empty and is not a previous export of {MARKER}: "
                "choose another folder or pass --overwrite to replace it"
            )
    metrics_file, metrics = _find_metrics(experiment_dir, hp, metrics_path)
    warnings_out = []
    system = str(_plain(hp.get("system", "speaker")))
    parts = list(REQUIRED_KEYS) + [k for k in OPTIONAL_KEYS if _tag(hp.get(k))]
    text, loadables = _inference_yaml(hp, parts, system)
    try:
        inference = load_hyperpyyaml(text)
    except Exception as err:
        where = os.path.join(experiment_dir, HPARAMS)
        raise HubError(f"the model blocks of {where} do not build: {type(err).__name__}: {err}") from err
    modules = {k: inference[k] for k in parts}

    # Checkpoint files of the modules, by the names the training checkpointer saved them under.
    names = _recoverable_names(hp)
    names.setdefault("mean_var_norm", "normalizer")
    sources = {}
    for key in [k for k in loadables if k in parts]:
        path = os.path.join(ckpt_path, f"{names.get(key, key)}.ckpt")
        if not os.path.isfile(path):
            raise HubError(f"checkpoint {ckpt_path} has no {os.path.basename(path)} for {key!r} "
                           f"(files: {', '.join(sorted(os.listdir(ckpt_path)))})")
        if _is_statistics(modules[key]):
            _load_state(path)  # must be readable with weights_only=True
            modules[key]._load(path)
        else:
            _load_checked(modules[key], path, key)
        sources[key] = path
    for module in modules.values():
        if isinstance(module, torch.nn.Module):
            module.eval()

    label_src = os.path.join(experiment_dir, "save", "label_encoder.txt")
    if "classifier" in parts:
        if not os.path.isfile(label_src):
            raise HubError(f"{experiment_dir} has no save/label_encoder.txt (the classifier's speakers)")
        encoder = CategoricalEncoder()
        try:
            encoder.load(label_src)
        except Exception as err:
            raise HubError(f"{label_src}: not a label encoder file: {err}") from err
        n_out = _plain(hp["classifier"]).get("out_neurons") if isinstance(hp["classifier"], dict) else None
        if n_out is not None and len(encoder) != int(n_out):
            raise HubError(f"{label_src} has {len(encoder)} speakers but the classifier has out_neurons={n_out}")

    cond, threshold = _threshold(metrics)
    ckpt_rel = os.path.relpath(ckpt_path, experiment_dir).replace(os.sep, "/")
    metrics_ckpt = metrics.get("checkpoint")
    mismatch = None
    if metrics_ckpt and os.path.basename(str(metrics_ckpt)) != os.path.basename(ckpt_path):
        mismatch = (f"the metrics and the threshold were computed with checkpoint {os.path.basename(str(metrics_ckpt))}"
                    f", not with the exported {os.path.basename(ckpt_path)}")
        warnings_out.append(mismatch)
    others = sorted({c for k in parts for c in _class_paths(hp[k]) if not c.startswith(("speechbrain.", "torch."))})
    if others:
        warnings_out.append(f"model blocks use classes outside SpeechBrain: {', '.join(others)}")
    sample_rate = int(_plain(hp.get("sample_rate", 16000)))
    info = {
        "system": system,
        "corpus": _corpus(hp, metrics),
        "threshold": threshold,
        "threshold_condition": cond,
        "command": _sanitize_command(metrics["command"]) if metrics.get("command") else None,
        "metrics_checkpoint_mismatch": mismatch,
        "non_speechbrain_classes": others,
        "sample_rate": sample_rate,
        "onnx": None,
    }

    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.tmp-")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the model folder is not
        with open(os.path.join(tmp, HPARAMS), "w", encoding="utf-8") as f:
            f.write(text)
        for key, path in sources.items():
            if _is_statistics(modules[key]):
                shutil.copyfile(path, os.path.join(tmp, f"{key}.ckpt"))
            else:
                torch.save(modules[key].state_dict(), os.path.join(tmp, f"{key}.ckpt"))
        if "classifier" in parts:
            shutil.copyfile(label_src, os.path.join(tmp, "label_encoder.txt"))
            shutil.copyfile(label_src, os.path.join(tmp, "label_encoder.ckpt"))
        cond_metrics = metrics["conditions"][cond]
        verification = {
            "threshold": threshold,
            "score": "cosine",
            "accept_if": "score >= threshold",
            "source": f"eer_threshold of condition {cond!r} in the training run's metrics.json",
            "condition": cond,
            "eer": cond_metrics.get("eer"),
            "min_dcf": cond_metrics.get("min_dcf"),
            "min_dcf_threshold": cond_metrics.get("min_dcf_threshold"),
        }
        _write_json(os.path.join(tmp, VERIFICATION), verification)
        reload_diff = _reload_check(tmp, modules, sample_rate)
        if onnx:
            try:
                import onnx as _onnx  # noqa: F401
                import onnxruntime as _ort  # noqa: F401
            except ImportError as err:
                raise HubError(f"--onnx needs onnx and onnxruntime (pip install -e '.[onnx]'): {err}") from err
            from speechbrain_ext import export as sx_export

            args = (modules["compute_features"], modules["mean_var_norm"], modules["embedding_model"])
            sx_export.export_onnx(*args, os.path.join(tmp, ONNX_FILE), sample_rate=sample_rate)
            sx_export.export_torchscript(*args, os.path.join(tmp, TORCHSCRIPT_FILE), sample_rate=sample_rate)
            parity = sx_export.parity_report(*args, torchscript=os.path.join(tmp, TORCHSCRIPT_FILE),
                                             onnx=os.path.join(tmp, ONNX_FILE), sample_rate=sample_rate)
            for kind in ("onnx", "torchscript"):
                if not parity[kind]["max_abs_diff"] <= PARITY_TOLERANCE:
                    raise HubError(f"{kind} export differs from PyTorch: max |diff| "
                                   f"{parity[kind]['max_abs_diff']:.3g} > {PARITY_TOLERANCE}")
            info["onnx"] = parity
        provenance = {
            "exported_by": MARKER,
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "system": system,
            "checkpoint": ckpt_rel,
            "valid_EER": meta.get("EER"),
            "epoch": meta.get("epoch"),
            "metrics_checkpoint": metrics_ckpt,
            "threshold": threshold,
            "threshold_condition": cond,
            "reload_max_abs_diff": reload_diff,
            "parity": info["onnx"],
            "parity_tolerance": PARITY_TOLERANCE,
        }
        _write_json(os.path.join(tmp, EXPORT_INFO), provenance)
        files = {n: os.path.getsize(os.path.join(tmp, n)) for n in sorted(os.listdir(tmp))}
        n_params = sum(p.numel() for p in modules["embedding_model"].parameters())
        card = _model_card(info, hp, metrics, meta, n_params, files, repo_id)
        with open(os.path.join(tmp, CARD), "w", encoding="utf-8") as f:
            f.write(card)
        texts = {n: open(os.path.join(tmp, n), encoding="utf-8").read()
                 for n in (HPARAMS, CARD, VERIFICATION, EXPORT_INFO)}
        _check_no_leaks(texts, experiment_dir)
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.old-")
            os.rename(out_dir, os.path.join(old, "model"))
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
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
        "threshold": threshold,
        "threshold_condition": cond,
        "files": files,
        "reload_max_abs_diff": reload_diff,
        "onnx": info["onnx"],
        "warnings": warnings_out,
    }


def read_threshold(source):
    """The decision threshold of a model folder or Hub repo (``verification.json``), or None.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "verification.json"), "w").write('{"threshold": 0.5}')
    >>> read_threshold(d)
    0.5
    >>> read_threshold(tempfile.mkdtemp()) is None
    True
    """
    if os.path.isdir(source):
        path = os.path.join(source, VERIFICATION)
        if not os.path.isfile(path):
            return None
    else:
        from speechbrain.utils.fetching import fetch

        try:
            path = str(fetch(VERIFICATION, source=source, savedir=None))
        except Exception:
            return None
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f).get("threshold")
    except (OSError, ValueError, AttributeError) as err:
        raise HubError(f"{path}: not a readable verification.json: {err}") from err
    return None if value is None else float(value)


# ----------------------------------------------------------------------------- push

_NETWORK_ERROR_NAMES = {
    "ConnectError", "ConnectTimeout", "NetworkError", "TransportError", "TimeoutException", "ReadTimeout",
    "ConnectionError", "OfflineModeIsEnabled", "ProxyError", "SSLError",
}


def _is_network_error(err):
    if isinstance(err, ConnectionError | socket.timeout | socket.gaierror):
        return True
    return any(cls.__name__ in _NETWORK_ERROR_NAMES for cls in type(err).__mro__)


def _status(err):
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _hub_error(err, repo_id, action):
    """A :class:`HubError` for a failed Hub call (no token or header in the message)."""
    if _is_network_error(err):
        return HubError(
            f"cannot reach the Hugging Face Hub to {action} {repo_id} (no network? HF_HUB_OFFLINE set?): "
            f"{type(err).__name__}; nothing was uploaded"
        )
    status = _status(err)
    if status in (401, 403):
        return HubError(
            f"the Hugging Face Hub refused to {action} {repo_id} (HTTP {status}): the token is invalid or has no "
            "write access to this namespace; log in again with `hf auth login` or set HF_TOKEN"
        )
    return HubError(f"could not {action} {repo_id} on the Hugging Face Hub: {type(err).__name__}: {err}")


def _folder_files(folder):
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, folder).replace(os.sep, "/")] = os.path.getsize(path)
    return out


def push_model(out_dir, repo_id, private=False, revision=None, dry_run=False, overwrite=False,
               commit_message=None, stream=None):
    """Upload an exported model folder to the Hugging Face Hub (``create_repo`` + ``upload_folder``).

    The token is ``huggingface_hub.get_token()`` (``HF_TOKEN`` or the stored login); it
    is passed to ``HfApi`` and never printed or written.

    Arguments
    ---------
    out_dir : str
        A folder written by :func:`export_model`.
    repo_id : str
        ``user/name`` (or ``org/name``).
    private : bool
        Create the repo private (an existing repo keeps its visibility).
    revision : str or None
        Branch to push to (created from the default branch if missing).
    dry_run : bool
        Only list the files, their sizes and the card; no token, no network.
    overwrite : bool
        Push into a repo that holds other files, deleting those.
    commit_message : str or None
    stream : file or None
        Where the dry run writes its listing (default ``sys.stdout``).

    Returns
    -------
    dict
        ``repo_id``, ``files`` (path → bytes), ``dry_run``, and after an upload
        ``url``, ``created`` (bool) and ``deleted`` (remote files removed).

    Example
    -------
    >>> import tempfile
    >>> push_model(tempfile.mkdtemp(), "me/model", dry_run=True)
    Traceback (most recent call last):
    ...
    speechbrain_ext.hub.HubError: ... has no hyperparams.yaml: not an exported model folder (run `... export` first)
    """
    stream = stream or sys.stdout
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id or ""):
        raise HubError(f"--repo-id must look like user/name, got {repo_id!r}")
    if not os.path.isdir(out_dir):
        raise HubError(f"model folder not found: {out_dir}")
    if not os.path.isfile(os.path.join(out_dir, HPARAMS)):
        raise HubError(f"{out_dir} has no {HPARAMS}: not an exported model folder "
                       f"(run `python -m {MARKER} export` first)")
    files = _folder_files(out_dir)
    result = {"repo_id": repo_id, "files": files, "dry_run": dry_run}
    if dry_run:
        total = sum(files.values())
        print(f"dry run: would upload {len(files)} files ({total / 1e6:.2f} MB) to "
              f"https://huggingface.co/{repo_id}" + (f" (revision {revision})" if revision else "")
              + (" as a private repo" if private else ""), file=stream)
        width = max(len(n) for n in files)
        for name, size in files.items():
            print(f"  {name.ljust(width)}  {size:>12,d} B", file=stream)
        card = os.path.join(out_dir, CARD)
        if os.path.isfile(card):
            print(f"\n----- {CARD} -----", file=stream)
            with open(card, encoding="utf-8") as f:
                print(f.read().rstrip(), file=stream)
        return result

    import huggingface_hub
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    token = huggingface_hub.get_token()
    if not token:
        raise HubError(
            "no Hugging Face token: log in with `hf auth login` (or `huggingface-cli login`), or set HF_TOKEN; "
            "nothing was uploaded"
        )
    api = HfApi(token=token)
    created = False
    try:
        try:
            remote = api.list_repo_files(repo_id, revision=revision)
        except RevisionNotFoundError:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
            remote = api.list_repo_files(repo_id, revision=revision)
        except RepositoryNotFoundError:
            api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
            created = True
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            remote = []
    except HubError:
        raise
    except Exception as err:
        raise _hub_error(err, repo_id, "look up") from err
    others = sorted(f for f in remote if f not in files and f not in _HUB_OWN_FILES)
    if others and not overwrite:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise HubError(
            f"{repo_id} already holds other content ({shown}); pass --overwrite to replace the repo's files "
            "with this model (nothing was uploaded)"
        )
    try:
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=out_dir,
            revision=revision,
            commit_message=commit_message or f"Upload speaker-verification model ({MARKER})",
            delete_patterns=others or None,
            ignore_patterns=[".*", "**/.*"],
        )
    except Exception as err:
        raise _hub_error(err, repo_id, "upload to") from err
    url = getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}"
    result.update(url=str(url), created=created, deleted=others)
    return result


# ----------------------------------------------------------------------------- CLI


def _parser():
    parser = argparse.ArgumentParser(
        prog=f"python -m {MARKER}",
        description="Export a trained experiment as a SpeechBrain speaker model and push it to the Hugging Face Hub.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write a SpeechBrain model folder from an experiment folder")
    exp.add_argument("experiment_dir")
    exp.add_argument("out_dir")
    exp.add_argument("--onnx", action="store_true", help="also write embedding.onnx and embedding.torchscript.pt")
    exp.add_argument("--checkpoint", help="checkpoint folder name under save/ (default: lowest valid EER)")
    exp.add_argument("--overwrite", action="store_true", help="replace a non-empty out_dir that is not an export")
    exp.add_argument("--repo-id", help="Hub repo id shown in the card's usage snippet")
    exp.add_argument("--metrics", help="metrics.json of the run (default: found next to the experiment)")
    push = sub.add_parser("push", help="upload an exported model folder to the Hugging Face Hub")
    push.add_argument("out_dir")
    push.add_argument("--repo-id", required=True, help="user/name or org/name")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--revision", help="branch to push to")
    push.add_argument("--dry-run", action="store_true", help="list files, sizes and the card; no network")
    push.add_argument("--overwrite", action="store_true", help="replace other content in an existing repo")
    push.add_argument("--commit-message")
    return parser


def main(argv=None):
    """Command line entry point; returns the exit status (0, or 2 on a :class:`HubError`).

    Example
    -------
    >>> main(["export", "/nonexistent/exp", "/tmp/never"])  # the message goes to stderr
    2
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            result = export_model(args.experiment_dir, args.out_dir, checkpoint=args.checkpoint, onnx=args.onnx,
                                  overwrite=args.overwrite, repo_id=args.repo_id, metrics_path=args.metrics)
            print(f"exported {result['checkpoint']} (epoch {result['epoch']}, valid EER {result['valid_EER']} %) "
                  f"to {result['out_dir']}")
            for name, size in result["files"].items():
                print(f"  {name:<28} {size:>12,d} B")
            print(f"threshold {result['threshold']:.4f} (EER threshold, condition {result['threshold_condition']!r})")
            print(f"reload check: max |diff| {result['reload_max_abs_diff']:.1e}")
            if result["onnx"]:
                par = result["onnx"]
                print(f"parity: onnx {par['onnx']['max_abs_diff']:.1e}, torchscript "
                      f"{par['torchscript']['max_abs_diff']:.1e} (tolerance {PARITY_TOLERANCE:g})")
            for warning in result["warnings"]:
                print(f"warning: {warning}")
        else:
            result = push_model(args.out_dir, args.repo_id, private=args.private, revision=args.revision,
                                dry_run=args.dry_run, overwrite=args.overwrite, commit_message=args.commit_message)
            if not args.dry_run:
                verb = "created and uploaded" if result["created"] else "uploaded"
                print(f"{verb} {len(result['files'])} files to {result['repo_id']}: {result['url']}")
                if result["deleted"]:
                    print(f"deleted from the repo: {', '.join(result['deleted'])}")
    except HubError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
