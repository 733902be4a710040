"""eSpeak NG through ctypes: a private copy of the engine and its data, one fresh library instance per utterance.

The engine is the one shipped in the ``espeakng_loader`` wheel (no system package,
no download), driven in synchronous mode. It keeps synthesis state in C statics
(pitch flutter phase, gain control, breath noise generator) that
``espeak_Terminate`` does not reset, so :class:`EspeakEngine` synthesises every
utterance with a freshly loaded private copy of the library (``dlopen`` /
``dlclose``, about 3 ms): the output then depends only on the utterance's own
parameters, not on what the process synthesised before or on how the work was
split between worker processes.

A voice is an accent (a language file of ``lang/gmw``) plus a variant file
(``voices/!v/<name>``) whose text the caller writes (:mod:`data_prep.voices`).
"""

import contextlib
import ctypes
import functools
import logging
import os
import shutil

import numpy as np

from speechbrain_ext.files import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["ESPEAK_SAMPLE_RATE", "EspeakEngine", "clear_variants", "engine", "prepare_espeak_root", "wheel_data_path"]

ESPEAK_SAMPLE_RATE = 22050

# espeak-ng API constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4
_ESPEAK_DATA_FILES = ("phondata", "phondata-manifest", "phonindex", "phontab", "intonations", "en_dict")
_ESPEAK_ROOT_VERSION = "1"
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def wheel_data_path(*parts):
    """A path inside the ``espeak-ng-data`` folder of the ``espeakng_loader`` wheel.

    Example
    -------
    >>> os.path.isdir(wheel_data_path("voices", "!v"))
    True
    """
    import espeakng_loader

    return os.path.join(espeakng_loader.get_data_path(), *parts)


def prepare_espeak_root(root):
    """Private copy of the English eSpeak data and of the library under ``root``.

    Only the voices of this run live in ``voices/!v`` (eSpeak's voice list holds
    350 entries and is filled from ``voices/`` first). The library copy has its
    own inode, so ``dlopen`` gives this module an instance nobody else in the
    process shares, and ``dlclose`` really unloads it.

    Example
    -------
    >>> import tempfile
    >>> root = prepare_espeak_root(os.path.join(tempfile.mkdtemp(), "espeak"))
    >>> sorted(os.listdir(root))
    ['VERSION', 'espeak-ng-data', 'libespeak-ng.so']
    """
    import espeakng_loader

    stamp = os.path.join(root, "VERSION")
    with contextlib.suppress(FileNotFoundError):
        with open(stamp) as f:
            if f.read().strip() == _ESPEAK_ROOT_VERSION:
                return root
    src = espeakng_loader.get_data_path()
    data = os.path.join(root, "espeak-ng-data")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(data, "voices", "!v"))
    os.makedirs(os.path.join(data, "lang", "gmw"))
    for name in _ESPEAK_DATA_FILES:
        shutil.copy2(os.path.join(src, name), os.path.join(data, name))
    for name in os.listdir(os.path.join(src, "lang", "gmw")):
        if name.startswith("en"):
            shutil.copy2(os.path.join(src, "lang", "gmw", name), os.path.join(data, "lang", "gmw", name))
    shutil.copy2(espeakng_loader.get_library_path(), os.path.join(root, "libespeak-ng.so"))
    with atomic_write(stamp) as f:
        f.write(_ESPEAK_ROOT_VERSION + "\n")
    return root


def clear_variants(root):
    """Remove the per-process variant files a generation left in ``root``'s ``voices/!v``.

    Example
    -------
    >>> import tempfile
    >>> root = prepare_espeak_root(os.path.join(tempfile.mkdtemp(), "espeak"))
    >>> clear_variants(root); os.listdir(os.path.join(root, "espeak-ng-data", "voices", "!v"))
    []
    """
    folder = os.path.join(root, "espeak-ng-data", "voices", "!v")
    for name in os.listdir(folder):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, name))


class EspeakEngine:
    """libespeak-ng through ctypes; a fresh library instance per utterance.

    Arguments
    ---------
    root : str
        A folder made by :func:`prepare_espeak_root`.

    Example
    -------
    >>> import tempfile
    >>> eng = EspeakEngine(prepare_espeak_root(os.path.join(tempfile.mkdtemp(), "espeak")))
    >>> prosody = {"rate": 175, "pitch": 50, "range": 50, "volume": 100}
    >>> a = eng.synth("Hello there.", "en-us", "language variant\\nname x\\n", prosody, seed=1)
    >>> b = eng.synth("Hello there.", "en-us", "language variant\\nname x\\n", prosody, seed=1)
    >>> a.dtype.name, len(a) > 0.3 * ESPEAK_SAMPLE_RATE, bool((a == b).all())
    ('int16', True, True)
    """

    def __init__(self, root):
        self.root = root
        self.lib_path = os.path.join(root, "libespeak-ng.so")
        self.variant_name = f"sx{os.getpid()}"
        self.variant_path = os.path.join(root, "espeak-ng-data", "voices", "!v", self.variant_name)
        self._variant = None
        self._chunks = []
        self._callback = _SYNTH_CALLBACK(self._collect)
        self._checked_unload = False

    def _collect(self, wav, n_samples, events):
        if n_samples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0

    def _load(self):
        try:
            return ctypes.CDLL(self.lib_path, mode=ctypes.RTLD_LOCAL)
        except OSError:
            # A data folder on a noexec mount cannot host the library copy.
            import espeakng_loader

            logger.warning("cannot load %s; using the shared eSpeak library", self.lib_path)
            self.lib_path = espeakng_loader.get_library_path()
            return ctypes.CDLL(self.lib_path, mode=ctypes.RTLD_LOCAL)

    def _write_variant(self, variant):
        if variant != self._variant or not os.path.exists(self.variant_path):
            with open(self.variant_path, "w") as f:
                f.write(variant)
            self._variant = variant

    def synth(self, text, accent, variant, prosody, seed):
        """int16 samples at 22050 Hz of ``text`` read by ``accent`` + the variant file text ``variant``.

        ``prosody`` holds the ``espeak_SetParameter`` values ``rate``, ``pitch``,
        ``range`` and ``volume``; ``seed`` seeds eSpeak's breath-noise generator.
        """
        import _ctypes

        self._write_variant(variant)
        lib = self._load()
        initialised = False
        try:
            self._declare(lib)
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.root.encode(),
                                         _INITIALIZE_DONT_EXIT)
            if rate != ESPEAK_SAMPLE_RATE:
                raise RuntimeError(f"espeak_Initialize({self.root}) returned {rate}")
            initialised = True
            lib.espeak_SetSynthCallback(self._callback)
            voice = f"{accent}+{self.variant_name}"
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise RuntimeError(f"eSpeak has no voice {voice!r}")
            for param, key in ((_ESPEAK_RATE, "rate"), (_ESPEAK_PITCH, "pitch"), (_ESPEAK_RANGE, "range"),
                               (_ESPEAK_VOLUME, "volume")):
                lib.espeak_SetParameter(param, int(prosody[key]), 0)
            # Breath noise comes from eSpeak's own generator, seeded per utterance.
            lib.espeak_ng_SetRandSeed(int(seed))
            self._chunks = []
            data = text.encode("utf-8")
            status = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise RuntimeError(f"espeak_Synth failed with status {status}")
        finally:
            if initialised:
                lib.espeak_Terminate()
            _ctypes.dlclose(lib._handle)
        if not self._checked_unload:
            self._check_unloaded()
        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    @staticmethod
    def _declare(lib):
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]

    def _check_unloaded(self):
        self._checked_unload = True
        with contextlib.suppress(OSError):
            with open("/proc/self/maps") as f:
                if self.lib_path in f.read():
                    logger.warning("libespeak-ng stays loaded after dlclose: SynthEmo output may depend on "
                                   "generation order and will not be bit-reproducible")


@functools.lru_cache(maxsize=4)
def engine(root):
    """The process's :class:`EspeakEngine` for ``root`` (one per worker process).

    Example
    -------
    >>> import tempfile
    >>> root = prepare_espeak_root(os.path.join(tempfile.mkdtemp(), "espeak"))
    >>> engine(root) is engine(root)
    True
    """
    return EspeakEngine(root)
