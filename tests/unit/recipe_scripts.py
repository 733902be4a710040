"""Import a recipe's script (``recipes/.../*.py``: not a package) as a module, by its path in the repository."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_script(*parts):
    """The module of ``<repository>/<parts...>``, executed once per call (named after its file)."""
    path = os.path.join(ROOT, *parts)
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
