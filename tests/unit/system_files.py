"""A system file's composed keys as YAML text: what layering a shared fragment on a system changes."""

import io
import os

import ruamel.yaml

from speechbrain_ext.hparams import compose_hparams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYNTHEMO_HPARAMS = os.path.join(ROOT, "recipes", "SynthEmo", "hparams")


def composed_texts(name, folder=SYNTHEMO_HPARAMS):
    """Every top-level key of a composed system file and its YAML text (tags included)."""
    yaml = ruamel.yaml.YAML()
    out = {}
    for key, value in yaml.load(compose_hparams(os.path.join(folder, name))).items():
        stream = io.StringIO()
        yaml.dump({key: value}, stream)
        out[key] = stream.getvalue()
    return out


def changed_keys(plain, layered, folder=SYNTHEMO_HPARAMS):
    """The keys whose composed text differs between two system files (added or removed keys included)."""
    a, b = composed_texts(plain, folder), composed_texts(layered, folder)
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
