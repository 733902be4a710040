"""Every error class of the package derives from the one base class the runner catches."""

import importlib
import inspect
import pkgutil

import speechbrain_ext
from speechbrain_ext.errors import SpeechBrainExtError


def _package_modules():
    for info in pkgutil.walk_packages(speechbrain_ext.__path__, "speechbrain_ext."):
        if not info.name.endswith(".__main__"):  # entry points run a command when imported
            yield importlib.import_module(info.name)


def test_every_error_class_of_the_package_derives_from_the_base():
    errors = {
        f"{cls.__module__}.{cls.__qualname__}"
        for module in _package_modules()
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, Exception) and not issubclass(cls, Warning) and cls.__module__.startswith("speechbrain_ext")
    }
    stray = sorted(e for e in errors if not issubclass(_resolve(e), SpeechBrainExtError))
    assert len(errors) >= 8  # ManifestError, HparamsError, ... : the walk found them
    assert stray == []


def _resolve(dotted):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_package_never_imports_data_prep():
    for module in _package_modules():
        source = inspect.getsource(module)
        assert "import data_prep" not in source and "from data_prep" not in source, module.__name__
