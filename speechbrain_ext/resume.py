"""Resume state: what a checkpoint holds besides the model, so a resumed run continues exactly.

SpeechBrain's ``Checkpointer`` saves the modules, the optimiser, the epoch counter
and the train loader's position. A run resumed from it still differs from an
uninterrupted one unless these are saved too (each a checkpoint recoverable that
:class:`~speechbrain_ext.brains.SpeakerBrain` registers in ``on_fit_start``):

- :class:`RNGState`: the torch, numpy and Python random streams (augmentation draws);
- :class:`AugmentState`: where the noise and impulse-response loaders of a wav
  augmentation stand;
- :class:`EpochProgress`: the running statistics (:class:`EpochStats`) and the
  unreadable-audio tally of a checkpoint written mid-epoch.

:func:`isolated_rng` runs a block (e.g. recreating a loader) without consuming the
global random streams.
"""

import contextlib
import dataclasses
import inspect
import json
import logging
import random
from collections import defaultdict

import numpy as np
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from speechbrain_ext import compat

logger = logging.getLogger(__name__)

__all__ = ["AugmentState", "EpochProgress", "EpochStats", "RNGState", "isolated_rng"]


class EpochStats:
    """Running means (and ranges) of scalar statistics over an epoch, for the train log.

    Example
    -------
    >>> s = EpochStats()
    >>> s.add({"alpha": 0.2}); s.add({"alpha": 0.6})
    >>> s.summary()
    {'alpha': 0.4, 'alpha_min': 0.2, 'alpha_max': 0.6}
    """

    ranged = ("alpha", "aam_margin", "contrastive_margin")

    def __init__(self):
        self.sums = defaultdict(float)
        self.counts = defaultdict(int)
        self.lows, self.highs = {}, {}

    def add(self, values):
        """Add one step's values (floats or 0-dim tensors)."""
        for key, value in values.items():
            value = float(value)
            self.sums[key] += value
            self.counts[key] += 1
            self.lows[key] = min(self.lows.get(key, value), value)
            self.highs[key] = max(self.highs.get(key, value), value)

    def summary(self):
        """Means, plus min/max for the keys in :attr:`ranged`."""
        out = {}
        for key in self.sums:
            out[key] = round(self.sums[key] / self.counts[key], 6)
            if key in self.ranged:
                out[f"{key}_min"] = round(self.lows[key], 6)
                out[f"{key}_max"] = round(self.highs[key], 6)
        return out

    def state_dict(self):
        """The running sums as plain JSON-able values (for mid-epoch checkpoints).

        Example
        -------
        >>> s = EpochStats(); s.add({"aam": 2.0})
        >>> t = EpochStats(); t.load_state_dict(s.state_dict()); t.summary()
        {'aam': 2.0}
        """
        return {"sums": dict(self.sums), "counts": dict(self.counts), "lows": self.lows, "highs": self.highs}

    def load_state_dict(self, state):
        """Continue from :meth:`state_dict`'s values."""
        self.sums = defaultdict(float, state["sums"])
        self.counts = defaultdict(int, state["counts"])
        self.lows, self.highs = dict(state["lows"]), dict(state["highs"])


@register_checkpoint_hooks
class RNGState:
    """Saves and restores the torch (CPU and CUDA), numpy and Python RNG states with each checkpoint.

    With it a resumed run draws the same augmentation noise as an uninterrupted one.
    Every state is stored as tensors, numbers, strings and lists, so the file loads
    with ``torch.load(weights_only=True)`` (no pickled object is ever executed).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "rng.ckpt")
    >>> r = RNGState(); r.save(p); a = torch.rand(1), np.random.rand(), random.random()
    >>> r.load(p); (torch.rand(1), np.random.rand(), random.random()) == a
    True
    >>> sorted(torch.load(p, weights_only=True))
    ['cuda', 'format', 'numpy', 'python', 'torch']
    """

    @mark_as_saver
    def save(self, path):
        """Write the RNG states to ``path``."""
        kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        state = {
            "format": 2,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {
                "kind": str(kind),
                "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached_gaussian),
            },
            "python": {"version": int(version), "internal": [int(v) for v in internal], "gauss_next": gauss_next},
        }
        torch.save(state, path)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Restore the RNG states saved at ``path`` (read with ``weights_only=True``)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        torch.set_rng_state(state["torch"])
        cuda_states = state.get("cuda") or []
        if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        npy = state["numpy"]
        np.random.set_state(
            (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
        )
        py = state["python"]
        random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))


@contextlib.contextmanager
def isolated_rng():
    """Run a block without consuming the global torch, numpy and Python random streams.

    Example
    -------
    >>> _ = torch.manual_seed(0); a = torch.rand(1)
    >>> _ = torch.manual_seed(0)
    >>> with isolated_rng():
    ...     _ = torch.rand(5), np.random.rand(), random.random()
    >>> bool(torch.rand(1) == a)
    True
    """
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@register_checkpoint_hooks
class AugmentState:
    """Saves where the noise and impulse-response loaders of a wav augmentation stand.

    SpeechBrain's ``AddNoise`` and ``AddReverb`` read their noise / RIR files through
    a private DataLoader whose iterator position is not part of any checkpoint, so a
    resumed run would add different noise from an uninterrupted one. This recoverable
    stores, for every such part, the loader's batch size and the number of batches its
    iterators have yielded; loading recreates the loader (with a dummy call, without
    touching the global random streams) and fast-forwards it to the same position.

    Arguments
    ---------
    augment : torch.nn.Module or None
        The ``wav_augment`` object of the hparams (an ``Augmenter``).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "augment.ckpt")
    >>> state = AugmentState(torch.nn.Identity()); state.save(p); state.load(p)
    >>> json.load(open(p))
    {'format': 1, 'parts': [None]}
    """

    def __init__(self, augment):
        self.augment = augment

    @mark_as_saver
    def save(self, path):
        """Write the loader positions to ``path`` (JSON)."""
        parts = []
        for part in compat.module_parts(self.augment):
            loader = getattr(part, "data_loader", None)
            if not isinstance(loader, torch.utils.data.DataLoader):
                parts.append(None)
                continue
            positions = {name: compat.batches_yielded(it) for name, it in compat.loader_iterators(part).items()}
            parts.append({"batch_size": loader.batch_size, "positions": positions})
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"format": 1, "parts": parts}, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Recreate the loaders saved at ``path`` and move them to their saved positions."""
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)["parts"]
        parts = compat.module_parts(self.augment)
        if len(parts) != len(saved):
            logger.warning("%s: the augmentation has changed since this checkpoint; loader positions not restored",
                           path)
            return
        for part, state in zip(parts, saved):
            if state is None:
                continue
            with isolated_rng():
                try:
                    self._restore(part, state)
                except Exception as err:  # an augmentation this code does not know: keep going
                    logger.warning("could not restore the loader position of %s: %s", type(part).__name__, err)

    @staticmethod
    def _restore(part, state):
        if not isinstance(getattr(part, "data_loader", None), torch.utils.data.DataLoader):
            # The loader is created on the first call: make one with a silent batch of the saved size.
            size = state["batch_size"] or 1
            wavs = torch.zeros(size, 16000)
            with torch.no_grad():
                if "lengths" in inspect.signature(part.forward).parameters:
                    part(wavs, torch.ones(size))
                else:
                    part(wavs)
        loader = part.data_loader
        for name, count in state["positions"].items():
            setattr(part, name, compat.fast_forward(loader, count))


@register_checkpoint_hooks
class EpochProgress:
    """Saves the running epoch statistics and skipped-audio tally with a mid-epoch checkpoint.

    A run resumed mid-epoch then logs the same epoch means and ``skipped`` counts as an
    uninterrupted one, and the skipped share keeps counting the whole epoch.

    Arguments
    ---------
    brain : SpeakerBrain
        The Brain whose ``epoch_stats`` and ``audio_issues`` are saved.

    Example
    -------
    >>> import tempfile, os
    >>> from types import SimpleNamespace
    >>> from speechbrain_ext.data import AudioIssueCounter
    >>> brain = SimpleNamespace(epoch_stats=EpochStats(), audio_issues=AudioIssueCounter(seen=3))
    >>> p = os.path.join(tempfile.mkdtemp(), "progress.ckpt")
    >>> EpochProgress(brain).save(p)
    >>> progress = EpochProgress(brain); progress.load(p, end_of_epoch=False); progress.pending["issues"]["seen"]
    3
    """

    def __init__(self, brain):
        self.brain = brain
        self.pending = None

    @mark_as_saver
    def save(self, path):
        """Write the statistics of the running training epoch to ``path`` (JSON)."""
        stats, issues = getattr(self.brain, "epoch_stats", None), getattr(self.brain, "audio_issues", None)
        state = {
            "stats": stats.state_dict() if stats is not None else None,
            "issues": dataclasses.asdict(issues) if issues is not None else None,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Keep the saved statistics for the next training stage (mid-epoch checkpoints only)."""
        self.pending = None
        if not end_of_epoch:
            with open(path, encoding="utf-8") as f:
                self.pending = json.load(f)

    def apply(self, epoch_stats, audio_issues):
        """Continue ``epoch_stats`` and ``audio_issues`` from a mid-epoch checkpoint, once."""
        state, self.pending = self.pending, None
        if not state:
            return
        if state.get("stats") is not None:
            epoch_stats.load_state_dict(state["stats"])
        for key, value in (state.get("issues") or {}).items():
            setattr(audio_issues, key, value)
