"""Composition of HyperPyYAML files: a system file names its base and overrides it.

A system file starts with ``base: <file>`` (or a list of files, applied in order,
paths relative to the system file); every other top-level key of the system file
overrides or extends the base: plain nested mappings merge key by key, while an
object (a ``!new:``/``!name:`` node) replaces the base's object whole. Command-line
overrides apply last and must name keys that exist (a typo is an error, not a
silently ignored setting). Resolution of ``!ref``/``!new:`` happens once, on the
composed text, so a system file may reference any key of its base.
"""

import io
import os

import ruamel.yaml
from hyperpyyaml import load_hyperpyyaml

from speechbrain_ext.errors import SpeechBrainExtError

BASE_KEY = "base"
#: Keys that change only how a finished run is evaluated (scoring, normalisation, calibration,
#: intervals): a run whose training is done is evaluated again with them, never trained again.
EVALUATION_KEYS = frozenset({
    "eval_splits", "score_norm", "score_norm_subtract_mean", "cohort_top_n", "cohort_utterances_per_speaker",
    "calibration_splits", "calibration_quality", "calibration_p_target", "bootstrap_draws",
})


class HparamsError(SpeechBrainExtError, ValueError):
    """A hyperparameter file or override is wrong; the message names the file and key.

    Example
    -------
    >>> str(HparamsError("a.yaml: unknown key 'x'"))
    "a.yaml: unknown key 'x'"
    """


def _yaml():
    yaml = ruamel.yaml.YAML()
    yaml.preserve_quotes = True
    return yaml


def yaml_tag(node):
    """The HyperPyYAML tag (``!new:...``, ``!ref``...) of a round-trip YAML node, or None.

    Only local tags count: YAML's own (``!!str``) and untagged nodes give None.

    Example
    -------
    >>> node = _yaml().load("a: !new:torch.nn.Linear\\n  in_features: 2\\nb: !!str 3\\nc: {x: 1}\\n")
    >>> yaml_tag(node["a"]), yaml_tag(node["b"]), yaml_tag(node["c"]), yaml_tag(5)
    ('!new:torch.nn.Linear', None, None, None)
    """
    value = getattr(getattr(node, "tag", None), "value", None)
    return value if isinstance(value, str) and value.startswith("!") else None


def merge_layer(base, layer):
    """Apply ``layer`` onto ``base`` in place: plain mappings merge key by key, anything
    else replaces. A tagged mapping (``!new:``, ``!name:``, ``!apply:``) names a whole
    object, so it replaces the base's object instead of patching its arguments.

    Example
    -------
    >>> y = _yaml()
    >>> base = y.load("opt: !new:a.A\\n  x: 1\\nplain:\\n  x: 1\\n")
    >>> merge_layer(base, y.load("opt: !new:b.B\\n  y: 2\\nplain:\\n  y: 2\\n"))
    >>> yaml_tag(base["opt"]), dict(base["opt"]), dict(base["plain"])
    ('!new:b.B', {'y': 2}, {'x': 1, 'y': 2})
    """
    for key, value in layer.items():
        current = base.get(key) if isinstance(base, dict) else None
        if (isinstance(value, dict) and isinstance(current, dict)
                and yaml_tag(value) is None and yaml_tag(current) is None):
            merge_layer(current, value)
        else:
            base[key] = value


def _load_layers(path, chain=()):
    """Return the round-trip YAML mappings of ``path``'s bases then ``path`` itself."""
    path = os.path.abspath(path)
    if path in chain:
        raise HparamsError(f"{path}: circular base chain {' -> '.join(chain + (path,))}")
    if not os.path.isfile(path):
        where = f" (base of {chain[-1]})" if chain else ""
        raise HparamsError(f"hyperparameter file not found: {path}{where}")
    with open(path) as f:
        try:
            node = _yaml().load(f)
        except ruamel.yaml.YAMLError as err:
            raise HparamsError(f"{path}: not valid YAML: {err}") from err
    if node is None:
        node = ruamel.yaml.comments.CommentedMap()
    if not isinstance(node, dict):
        raise HparamsError(f"{path}: the top level must be a mapping")
    bases = node.pop(BASE_KEY, None)
    layers = []
    if bases is not None:
        for base in [bases] if isinstance(bases, str) else list(bases):
            base_path = os.path.join(os.path.dirname(path), str(base))
            layers.extend(_load_layers(base_path, chain + (path,)))
    layers.append((path, node))
    return layers


def compose_hparams(path):
    """Compose ``path`` with its bases into one HyperPyYAML text (still unresolved).

    Arguments
    ---------
    path : str
        A system file, optionally with ``base:``.

    Returns
    -------
    str
        The composed YAML, suitable for :func:`hyperpyyaml.load_hyperpyyaml`.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "b.yaml"), "w").write("lr: 1\\nopt:\\n  beta: 2\\n")
    >>> _ = open(os.path.join(d, "s.yaml"), "w").write("base: b.yaml\\nopt:\\n  gamma: 3\\n")
    >>> print(compose_hparams(os.path.join(d, "s.yaml")).strip())
    lr: 1
    opt:
      beta: 2
      gamma: 3
    """
    layers = _load_layers(path)
    composed = layers[0][1]
    for _, layer in layers[1:]:
        merge_layer(composed, layer)
    stream = io.StringIO()
    _yaml().dump(composed, stream)
    return stream.getvalue()


def load_hparams(path, overrides=None):
    """Compose ``path`` with its bases, apply command-line ``overrides`` and resolve.

    Arguments
    ---------
    path : str
        The system file.
    overrides : str or dict or None
        Overrides as SpeechBrain's ``parse_arguments`` returns them; every key must
        exist in the composed file.

    Returns
    -------
    hparams : dict
        The resolved hyperparameters.
    composed : str
        The composed YAML text with the overrides applied (to save next to a run).

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "b.yaml"), "w").write("lr: 1\\ntwice: !ref <lr> * 2\\n")
    >>> _ = open(os.path.join(d, "s.yaml"), "w").write("base: b.yaml\\nlr: 3\\n")
    >>> hparams, _ = load_hparams(os.path.join(d, "s.yaml"), "lr: 5")
    >>> hparams["twice"]
    10
    >>> load_hparams(os.path.join(d, "s.yaml"), "lrr: 5")
    Traceback (most recent call last):
    ...
    speechbrain_ext.hparams.HparamsError: unknown hyperparameter 'lrr' in the overrides for ...s.yaml; ...
    """
    text = compose_hparams(path)
    if isinstance(overrides, dict):
        stream = io.StringIO()
        _yaml().dump(overrides, stream)
        overrides = stream.getvalue()
    overrides = overrides or None
    if overrides:
        known = set(_yaml().load(text) or {})
        given = _yaml().load(overrides) or {}
        unknown = sorted(k for k in given if k not in known)
        if unknown:
            close = ", ".join(sorted(k for k in known if _similar(k, unknown[0]))[:5])
            hint = f"did you mean: {close}" if close else f"known keys include: {', '.join(sorted(known)[:12])}"
            raise HparamsError(
                f"unknown hyperparameter {unknown[0]!r} in the overrides for {path}; {hint}"
            )
        base_map = _yaml().load(text)
        check_override_types(base_map, given, path)
        merge_layer(base_map, given)
        stream = io.StringIO()
        _yaml().dump(base_map, stream)
        text = stream.getvalue()
    try:
        hparams = load_hyperpyyaml(text)
    except Exception as err:
        raise HparamsError(f"{path}: could not build the hyperparameters: {type(err).__name__}: {err}") from err
    return hparams, text


def _kind(value):
    """``"bool"``, ``"int"``, ``"float"``, ``"str"`` or ``None`` (anything else: no check)."""
    if yaml_tag(value) is not None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return None


_EXPECTED = {"bool": "true or false", "int": "an integer", "float": "a number"}


def check_override_types(base, given, path="<hparams>", prefix=""):
    """Refuse a command-line value whose type cannot replace the composed file's value.

    A key whose value in the file is a plain boolean, integer or float must be
    overridden with the same kind (an integer for a float is fine; ``null`` is always
    accepted), so ``--number_of_epochs abc`` fails here, naming the key, instead of
    deep inside a training loop. Tagged values (``!ref``, ``!new:``...), strings and
    lists are not checked; plain nested mappings are checked key by key.

    Arguments
    ---------
    base : dict
        The composed hyperparameters (round-trip YAML mapping).
    given : dict
        The overrides.
    path : str
        The system file, for the message.
    prefix : str
        Key prefix of nested mappings, for the message.

    Example
    -------
    >>> check_override_types({"n": 8, "lr": 0.1}, {"n": 2, "lr": 1})
    >>> check_override_types({"n": 8}, {"n": "abc"}, "s.yaml")
    Traceback (most recent call last):
    ...
    speechbrain_ext.hparams.HparamsError: s.yaml: --n expects an integer (like its value 8 in the file), got 'abc'
    """
    for key, value in given.items():
        current = base.get(key) if isinstance(base, dict) else None
        if (isinstance(value, dict) and isinstance(current, dict)
                and yaml_tag(value) is None and yaml_tag(current) is None):
            check_override_types(current, value, path, prefix=f"{prefix}{key}.")
            continue
        want, got = _kind(current), _kind(value)
        if want not in _EXPECTED or value is None:
            continue
        if got == want or (want == "float" and got == "int"):
            continue
        shown = value if yaml_tag(value) is None else f"{yaml_tag(value)} {getattr(value, 'value', '')}".strip()
        raise HparamsError(
            f"{path}: --{prefix}{key} expects {_EXPECTED[want]} (like its value {current} in the file), got {shown!r}"
        )


def _similar(a, b):
    """Cheap closeness test for 'did you mean' hints (shared prefix or containment)."""
    a, b = a.lower(), b.lower()
    return a[:4] == b[:4] or a in b or b in a
