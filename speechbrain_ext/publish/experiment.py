"""Read a training output folder: its checkpoints, composed hyperparameters and metrics.

An experiment folder, as the recipes write it, holds ``hyperparams.yaml`` (the
composed training hyperparameters), ``save/CKPT+*/`` (checkpoints with their
``CKPT.yaml`` meta), ``save/label_encoder.txt`` and ``report/metrics.json``.
The hyperparameters are read as a round-trip YAML mapping (tags kept, ``!ref``
resolved), the form the inference YAML and the model card are built from.
"""

import glob
import math
import os
import re

import ruamel.yaml
import yaml

from speechbrain_ext.hparams import yaml_tag
from speechbrain_ext.publish.layout import HPARAMS, PublishError

__all__ = [
    "OPTIONAL_KEYS",
    "REQUIRED_KEYS",
    "class_paths",
    "corpus_name",
    "encoder_name",
    "find_checkpoint",
    "find_metrics",
    "model_parts",
    "plain",
    "read_hparams",
    "recoverable_names",
    "sanitize_command",
    "short_class",
    "threshold_of",
]

#: Model blocks every export has, in the order they are written.
REQUIRED_KEYS = ("compute_features", "mean_var_norm", "embedding_model")
#: Model blocks exported when the experiment has them.
OPTIONAL_KEYS = ("classifier", "mean_var_norm_emb")
#: How the card names the encoders it knows (by class name); any other is named by its class.
ENCODER_NAMES = {"ECAPA_TDNN": "ECAPA-TDNN", "ResNet34": "ResNet34", "CAMPPlus": "CAM++"}
_ABS_PATH = re.compile(r"^(?:/|~|[A-Za-z]:[\\/]|\\\\)")


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
    speechbrain_ext.publish.layout.PublishError: no checkpoint in ...: expected save/CKPT+*/CKPT.yaml (train first)
    """
    save = os.path.join(experiment_dir, "save")
    found = sorted(
        d for d in glob.glob(os.path.join(glob.escape(save), "CKPT*")) if os.path.isfile(os.path.join(d, "CKPT.yaml"))
    )
    if checkpoint is not None:
        path = checkpoint if os.path.isdir(checkpoint) else os.path.join(save, checkpoint)
        if not os.path.isfile(os.path.join(path, "CKPT.yaml")):
            names = ", ".join(os.path.basename(d) for d in found) or "none"
            raise PublishError(f"checkpoint {checkpoint!r} not found in {save} (checkpoints there: {names})")
        return path, _read_meta(path)
    if not found:
        raise PublishError(f"no checkpoint in {experiment_dir}: expected save/CKPT+*/CKPT.yaml (train first)")
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


def read_hparams(experiment_dir):
    """The experiment's ``hyperparams.yaml`` as a round-trip mapping (tags kept, ``!ref`` resolved).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "hyperparams.yaml"), "w").write("sample_rate: 16000\\n")
    >>> read_hparams(d)
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: .../hyperparams.yaml: no 'compute_features' module (a '!new:' ...
    """
    from hyperpyyaml import resolve_references

    path = os.path.join(experiment_dir, HPARAMS)
    if not os.path.isdir(experiment_dir):
        raise PublishError(f"experiment folder not found: {experiment_dir}")
    if not os.path.isfile(path):
        raise PublishError(f"{experiment_dir} has no {HPARAMS}: not a training output folder")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        resolved = resolve_references(text).getvalue()
        node = ruamel.yaml.YAML().load(resolved)
    except Exception as err:  # ruamel / hyperpyyaml raise many types
        raise PublishError(f"{path}: cannot be read: {type(err).__name__}: {err}") from err
    if not isinstance(node, dict):
        raise PublishError(f"{path}: the top level must be a mapping")
    for key in REQUIRED_KEYS:
        if not yaml_tag(node.get(key)):
            raise PublishError(f"{path}: no {key!r} module (a '!new:' entry) to export")
    return node


def model_parts(hp):
    """The model blocks to export, in order: the required ones, then the optional ones present.

    Example
    -------
    >>> hp = ruamel.yaml.YAML().load("classifier: !new:a.B\\nmean_var_norm_emb: null\\n")
    >>> model_parts(hp)
    ['compute_features', 'mean_var_norm', 'embedding_model', 'classifier']
    """
    return list(REQUIRED_KEYS) + [k for k in OPTIONAL_KEYS if yaml_tag(hp.get(k))]


def plain(node):
    """Ruamel node → plain Python (tags dropped, tagged scalars as ``'!tag value'``).

    Example
    -------
    >>> plain(ruamel.yaml.YAML().load("a: !new:x.Y\\n  b: [1, 2.5, yes]\\nc: !ref <a>\\n"))
    {'a': {'b': [1, 2.5, 'yes']}, 'c': '!ref <a>'}
    """
    from ruamel.yaml.comments import TaggedScalar
    from ruamel.yaml.scalarbool import ScalarBoolean

    if isinstance(node, TaggedScalar):
        return f"{node.tag.value} {node.value}".strip()
    if isinstance(node, ScalarBoolean | bool):
        return bool(node)
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [plain(v) for v in node]
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node if node is None else str(node)


def class_paths(node):
    """Every ``!new:``/``!name:``/``!apply:`` target inside ``node``.

    Example
    -------
    >>> class_paths(ruamel.yaml.YAML().load("a: !new:x.Y\\n  b: [!name:z.f ]\\n")["a"])
    ['x.Y', 'z.f']
    """
    out = []
    tag = yaml_tag(node)
    if tag and ":" in tag:
        out.append(tag.split(":", 1)[1])
    if isinstance(node, dict):
        for v in node.values():
            out += class_paths(v)
    elif isinstance(node, list | tuple):
        for v in node:
            out += class_paths(v)
    return out


def short_class(path):
    """The class name of a dotted path.

    Example
    -------
    >>> short_class("speechbrain.lobes.features.Fbank")
    'Fbank'
    """
    return str(path).rsplit(".", 1)[-1]


def encoder_name(hp):
    """The name of the experiment's ``embedding_model`` as the card and the YAML header show it.

    Example
    -------
    >>> encoder_name(ruamel.yaml.YAML().load("embedding_model: !new:speechbrain_ext.encoders.CAMPPlus\\n  a: 1\\n"))
    'CAM++'
    >>> encoder_name(ruamel.yaml.YAML().load("embedding_model: !new:my.models.TinyNet\\n  a: 1\\n"))
    'TinyNet'
    """
    name = short_class(yaml_tag(hp["embedding_model"]).split(":", 1)[1])
    return ENCODER_NAMES.get(name, name)


def recoverable_names(hp):
    """``{module key: checkpoint file stem}`` from the experiment's checkpointer recoverables.

    Example
    -------
    >>> hp = ruamel.yaml.YAML().load(
    ...     "embedding_model: &e !new:a.B\\n  x: 1\\ncheckpointer:\\n  recoverables:\\n    embedder: *e\\n")
    >>> recoverable_names(hp)
    {'embedding_model': 'embedder'}
    """
    names = {}
    recoverables = (hp.get("checkpointer") or {}).get("recoverables") or {}
    for name, obj in recoverables.items():
        for key in REQUIRED_KEYS + OPTIONAL_KEYS:
            if key in hp and hp[key] is obj:
                names.setdefault(key, name)
    return names


def find_metrics(experiment_dir, hp, metrics_path=None):
    """``(path, metrics)`` of the run's ``metrics.json``: the one given, else the first one found.

    Looked for in ``<exp>/report/``, the hparams' ``report_folder`` and the
    experiment's parent folder.

    Example
    -------
    >>> find_metrics("/nonexistent/exp", {})
    Traceback (most recent call last):
    ...
    speechbrain_ext.publish.layout.PublishError: no metrics.json for /nonexistent/exp (looked in report/, ...
    """
    from speechbrain_ext.report import MetricsError, read_metrics

    if metrics_path is not None:
        if not os.path.isfile(metrics_path):
            raise PublishError(f"metrics file not found: {metrics_path}")
        candidates = [metrics_path]
    else:
        candidates = [os.path.join(experiment_dir, "report", "metrics.json")]
        report = plain(hp.get("report_folder"))
        if isinstance(report, str):
            candidates.append(os.path.join(report, "metrics.json"))
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(experiment_dir)), "metrics.json"))
    for path in candidates:
        if os.path.isfile(path):
            try:
                return path, read_metrics(path)
            except MetricsError as err:
                raise PublishError(str(err)) from err
    raise PublishError(
        f"no metrics.json for {experiment_dir} (looked in report/, the report_folder and the parent folder): "
        "the evaluation of the training run writes it; or pass --metrics"
    )


def threshold_of(metrics):
    """``(where, threshold, source)``: the cosine threshold an export ships, and where it comes from.

    The EER threshold of the validation trials the run's calibration was fitted on
    (``metrics["calibration"]["eer_threshold"]``, written by the evaluation since the
    operating point is chosen on validation speakers); for a run evaluated before that,
    the EER threshold of the ``all`` evaluation condition (else the first), which the
    export then names as chosen on evaluation trials.

    Example
    -------
    >>> threshold_of({"conditions": {"all": {"eer_threshold": 0.5}},
    ...               "calibration": {"split": "valid", "condition": "all", "eer_threshold": 0.4}})[:2]
    ('valid/all', 0.4)
    >>> threshold_of({"conditions": {"a": {"eer_threshold": 0.3}, "all": {"eer_threshold": 0.5}}})[:2]
    ('all', 0.5)
    """
    calibration = metrics.get("calibration") or {}
    if calibration.get("eer_threshold") is not None:
        where = f"{calibration['split']}/{calibration['condition']}"
        return where, float(calibration["eer_threshold"]), (
            f"EER threshold of the validation trials {where} (the calibration trials) in the training run's "
            "metrics.json")
    conditions = metrics["conditions"]
    name = "all" if "all" in conditions else next(iter(conditions))
    cond = conditions[name]
    if "eer_threshold" not in cond:
        raise PublishError(f"metrics.json condition {name!r} has no eer_threshold")
    return name, float(cond["eer_threshold"]), (
        f"eer_threshold of evaluation condition {name!r} in the training run's metrics.json (chosen on evaluation "
        "trials: the run was evaluated before validation thresholds were recorded; run its recipe command again "
        "to re-evaluate it)")


def sanitize_command(command):
    """The training command without the training machine's paths.

    Example
    -------
    >>> sanitize_command("python ../u/recipes/X/train.py /home/u/recipes/X/h.yaml --data /d/x --out ../r --n 3")
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


def corpus_name(hp, metrics):
    """The corpus name from the recipe path (``recipes/<Corpus>/``), else the data folder's name.

    Example
    -------
    >>> corpus_name({}, {"command": "python recipes/SynthEmo/train.py h.yaml"})
    'SynthEmo'
    >>> corpus_name({"data_folder": "/data/VoxCeleb/"}, {})
    'VoxCeleb'
    """
    for text in (str(metrics.get("command", "")), str(metrics.get("title", ""))):
        match = re.search(r"recipes/([A-Za-z0-9_.-]+)/", text)
        if match:
            return match.group(1)
    data = plain(hp.get("data_folder"))
    return os.path.basename(os.path.normpath(data)) if isinstance(data, str) and data else "unknown"
