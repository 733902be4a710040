"""Keyed random draws: the same number for the same key in every process, worker and resumed run.

Python's ``hash`` is salted per process and a shared RNG depends on the order in
which workers consume it, so per-utterance randomness (crop offsets, CopyPaste
partners, ratios) is drawn from a BLAKE2 hash of its key instead, e.g.
``(seed, epoch, utterance id)``.
"""

import hashlib


def keyed_draw(*parts, sep="\x1f"):
    """An unsigned 64-bit integer determined by ``parts`` only.

    Arguments
    ---------
    *parts
        The key (numbers and strings, joined with ``sep`` as text).
    sep : str
        Separator between the parts; part of the key, so the same parts with another
        separator give another draw.

    Example
    -------
    >>> keyed_draw(1986, 3, "S0001_000001") == keyed_draw(1986, 3, "S0001_000001")
    True
    >>> keyed_draw(1986, 3, "S0001_000001") == keyed_draw(1986, 4, "S0001_000001")
    False
    >>> keyed_draw(0, "a") == keyed_draw(0, "a", sep="|"), 0 <= keyed_draw("x") < 2**64
    (False, True)
    """
    key = sep.join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
