"""Recipe override values of a suite (:mod:`speechbrain_ext.suite`) as command-line text and back.

A value written on the command line (``--set``, ``--variants``) is read as YAML reads it,
and a value the runner passes to a recipe is written so that the recipe's YAML reading
gives the same value back.
"""

import json

import ruamel.yaml

__all__ = ["override_args", "parse_value", "value_text"]


def parse_value(text):
    """A command-line value as YAML reads it (``"0.1"`` -> 0.1, ``"[5, 25]"`` -> [5, 25], ``"abc"`` -> 'abc').

    Example
    -------
    >>> parse_value("0.1"), parse_value("[5, 25]"), parse_value("data/x"), parse_value("True")
    (0.1, [5, 25], 'data/x', True)
    """
    value = ruamel.yaml.YAML(typ="safe", pure=True).load(text)
    return text if value is None and text.strip() not in ("null", "~") else value


def value_text(value):
    """A value as one command-line argument that YAML reads back to the same value.

    Example
    -------
    >>> value_text(0.1), value_text([5.0, 25]), value_text("data/x"), value_text("1e-3"), value_text(None)
    ('0.1', '[5.0, 25]', 'data/x', '"1e-3"', 'null')
    """
    if isinstance(value, str):
        return value if parse_value(value) == value else json.dumps(value)
    return json.dumps(value)


def override_args(values):
    """``{key: value}`` as ``["--key", "value", ...]`` (:func:`value_text`).

    Example
    -------
    >>> override_args({"lr": 0.1, "flag": True})
    ['--lr', '0.1', '--flag', 'true']
    """
    return [item for key, value in values.items() for item in (f"--{key}", value_text(value))]
