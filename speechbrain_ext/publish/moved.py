"""Old import paths of the publishing code, kept working with a DeprecationWarning.

``speechbrain_ext.hub``, ``speechbrain_ext.export`` and ``speechbrain_ext.verify`` held
the publishing code before :mod:`speechbrain_ext.publish`; each now defines its module
``__getattr__`` with :func:`moved_names`, so ``speechbrain_ext.hub.export_model`` still
resolves, to the new object, and says where it lives now.
"""

import importlib
import warnings

__all__ = ["moved_names"]


def moved_names(old_module, moves):
    """A module ``__getattr__`` that resolves the names in ``moves`` with a DeprecationWarning.

    Arguments
    ---------
    old_module : str
        The module the names used to live in (for the messages).
    moves : dict
        ``{old name: (new module, new name)}``.

    Example
    -------
    >>> get = moved_names("old.place", {"dumps": ("json", "dumps")})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     get("dumps") is importlib.import_module("json").dumps, str(caught[0].message)
    (True, 'old.place.dumps is deprecated: use json.dumps')
    >>> get("nothing")
    Traceback (most recent call last):
    ...
    AttributeError: module 'old.place' has no attribute 'nothing'
    """

    def __getattr__(name):
        if name not in moves:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        new_module, new_name = moves[name]
        warnings.warn(f"{old_module}.{name} is deprecated: use {new_module}.{new_name}", DeprecationWarning,
                      stacklevel=2)
        return getattr(importlib.import_module(new_module), new_name)

    return __getattr__
