"""The ``hyperparams.yaml`` of an export: SpeechBrain's inference layout, written by ruamel.yaml.

The model blocks are copied from the experiment's composed hyperparameters as fresh
nodes (tags kept; anchors, comments and the training file's styles dropped): mappings
in block style, sequences and everything inside them in flow style. A ``Pretrainer``
without ``paths`` loads each loadable ``<name>`` from ``<source>/<name>.ckpt``, next
to the YAML, wherever the folder or repo lives.
"""

import io

import ruamel.yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.tag import Tag

from speechbrain_ext.hparams import yaml_tag
from speechbrain_ext.publish.experiment import class_paths, encoder_name, plain
from speechbrain_ext.publish.layout import MARKER

__all__ = ["inference_yaml", "loadable_names"]

_HEADER = """\
# {rule}
# Speaker embeddings ({system}, {encoder}), exported by {marker} from a
# speechbrain_ext training run. Inference with SpeechBrain:
#   from speechbrain.inference.speaker import SpeakerRecognition
#   model = SpeakerRecognition.from_hparams(source=<this folder or Hub repo id>, savedir=...)
# The Pretrainer has no `paths`: each loadable <name> is read from <source>/<name>.ckpt,
# i.e. next to this file, whatever folder or repo the model was copied to.
# Model blocks are copied from the training hyperparameters.{package}
# {rule}

"""


class _Representer(RoundTripRepresenter):
    """Round-trip representer writing ``null`` rather than an empty value (clearer to a reader)."""


_Representer.add_representer(
    type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
)


def _writer():
    yaml = ruamel.yaml.YAML()
    yaml.Representer = _Representer
    yaml.width = 4096  # one line per entry, as in the training YAML
    return yaml


def _tagged(container, tag):
    if tag:
        container.yaml_set_ctag(Tag(suffix=tag))
    return container


def _fresh(node, flow=False):
    """A copy of ``node`` with its HyperPyYAML tags and nothing else of its source text."""
    tag = yaml_tag(node)
    if isinstance(node, TaggedScalar):
        return TaggedScalar(value=plain(node.value) if node.value else "", tag=tag)
    if isinstance(node, dict):
        out = _tagged(CommentedMap((str(k), _fresh(v, flow)) for k, v in node.items()), tag)
        if flow:
            out.fa.set_flow_style()
        return out
    if isinstance(node, list | tuple):
        out = _tagged(CommentedSeq(_fresh(v, True) for v in node), tag)
        out.fa.set_flow_style()
        return out
    return plain(node)


def _ref(name):
    return TaggedScalar(value=f"<{name}>", tag="!ref")


def _new(class_path, **args):
    if not args:
        return TaggedScalar(value="", tag=f"!new:{class_path}")
    return _tagged(CommentedMap(args), f"!new:{class_path}")


def loadable_names(hp, parts):
    """The ``Pretrainer`` loadables: the modules with a checkpoint file, then the label encoder.

    ``mean_var_norm`` only when it keeps running statistics (``norm_type: global``).

    Example
    -------
    >>> hp = ruamel.yaml.YAML().load("mean_var_norm: !new:x.N\\n  norm_type: sentence\\n")
    >>> loadable_names(hp, ["mean_var_norm", "embedding_model", "classifier"])
    ['embedding_model', 'classifier', 'label_encoder']
    """
    loadables = ["embedding_model"]
    if "mean_var_norm" in parts and _norm_has_stats(hp["mean_var_norm"]):
        loadables.insert(0, "mean_var_norm")
    if "mean_var_norm_emb" in parts:
        loadables.append("mean_var_norm_emb")
    if "classifier" in parts:
        loadables += ["classifier", "label_encoder"]
    return loadables


def _norm_has_stats(node):
    """Whether an ``InputNormalization`` block keeps running statistics (``norm_type: global``)."""
    args = plain(node) if isinstance(node, dict) else {}
    return isinstance(args, dict) and args.get("norm_type", "global") == "global"


def inference_yaml(hp, parts, system):
    """The text of the export's ``hyperparams.yaml`` and its ``Pretrainer`` loadables.

    Arguments
    ---------
    hp : dict
        The experiment's hyperparameters (round-trip mapping, ``!ref`` resolved).
    parts : list of str
        The model blocks to copy, in order (:func:`~speechbrain_ext.publish.experiment.model_parts`).
    system : str
        The system name, for the header comment.

    Returns
    -------
    text : str
    loadables : list of str

    Example
    -------
    >>> hp = ruamel.yaml.YAML().load(
    ...     "compute_features: !new:speechbrain.lobes.features.Fbank\\n  n_mels: 40\\n"
    ...     "mean_var_norm: !new:speechbrain.processing.features.InputNormalization\\n  norm_type: sentence\\n"
    ...     "embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN\\n  input_size: 40\\n"
    ...     "  channels: [16, 16, 16, 16, 48]\\n  lin_neurons: 8\\n")
    >>> text, loadables = inference_yaml(hp, ["compute_features", "mean_var_norm", "embedding_model"], "demo")
    >>> loadables
    ['embedding_model']
    >>> print(text.split("channels")[1].splitlines()[0])
    : [16, 16, 16, 16, 48]
    >>> from hyperpyyaml import load_hyperpyyaml
    >>> type(load_hyperpyyaml(text)["modules"]["embedding_model"]).__name__
    'ECAPA_TDNN'
    """
    sample_rate = plain(hp.get("sample_rate", 16000))
    doc = CommentedMap()
    doc["sample_rate"] = sample_rate
    doc["audio_normalizer"] = _new("speechbrain.dataio.preprocess.AudioNormalizer", sample_rate=sample_rate)
    for key in parts:
        doc[key] = _fresh(hp[key])
    if "classifier" in parts:
        doc["label_encoder"] = _new("speechbrain.dataio.encoder.CategoricalEncoder")
    doc["modules"] = CommentedMap((key, _ref(key)) for key in parts)
    loadables = loadable_names(hp, parts)
    pretrainer = CommentedMap(loadables=CommentedMap((name, _ref(name)) for name in loadables))
    doc["pretrainer"] = _tagged(pretrainer, "!new:speechbrain.utils.parameter_transfer.Pretrainer")
    comments = {"audio_normalizer": "\nResampling and down-mixing of the input audio (load_audio, verify_files)."}
    for key in list(doc)[1:]:  # a blank line between the entries
        doc.yaml_set_comment_before_after_key(key, before=comments.get(key, "\n"))
    stream = io.StringIO()
    others = sorted({c.split(".", 1)[0] for k in parts for c in class_paths(hp[k])} - {"speechbrain", "torch"})
    package = "".join(f"\n# The model blocks name classes of {p}: install it before loading." for p in others)
    stream.write(_HEADER.format(rule="#" * 76, system=system, encoder=encoder_name(hp), marker=MARKER,
                                package=package))
    _writer().dump(doc, stream)
    return stream.getvalue(), loadables
