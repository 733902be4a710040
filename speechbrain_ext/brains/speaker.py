"""The speaker-embedding Brain every recipe uses, and the hooks its subclasses override.

Training step::

    prepare_waveforms   (crop already done by the loader) → wav augmentation
    compute_features    Fbank → mean-variance norm
    embedding_model     → embeddings [B, 1, D]
    classifier          → cosine logits [B, 1, C]
    compute_losses      → {"aam": ...}           (subclasses add terms)
    loss_balancer       → one scalar + stats     (fixed weights or MGDA, from YAML)

Validation extracts embeddings of the validation speakers and scores their trial
list, so checkpoints are selected by a verification EER on speakers the model never
saw, never on the evaluation trials.
"""

import contextlib
import dataclasses
import inspect
import json
import logging
import os
import pickle
import random
import time
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from speechbrain_ext import data as sx_data
from speechbrain_ext import distributed as sx_distributed
from speechbrain_ext import verification
from speechbrain_ext.errors import SpeechBrainExtError

logger = logging.getLogger(__name__)


class TrainingAborted(SpeechBrainExtError, RuntimeError):
    """Training cannot go on (non-finite loss, too many unreadable files); nothing was saved after it.

    Example
    -------
    >>> str(TrainingAborted("loss is nan at step 3"))
    'loss is nan at step 3'
    """


class EpochStats:
    """Running means (and ranges) of scalar statistics over an epoch, for the train log.

    Example
    -------
    >>> s = EpochStats()
    >>> s.add({"alpha": 0.2}); s.add({"alpha": 0.6})
    >>> s.summary()
    {'alpha': 0.4, 'alpha_min': 0.2, 'alpha_max': 0.6}
    """

    ranged = ("alpha",)

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
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # Written by an older version (numpy's state pickled): not loaded, as that would need
            # weights_only=False. Training resumes; only its random draws differ from an uninterrupted run.
            logger.warning("%s: RNG state in an old format (pickled numpy objects), not restored", path)
            return
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


def _augment_parts(augment):
    """Every object inside a wav augmentation, depth first, in a fixed order (Augmenter keeps a dict)."""
    seen, out = set(), []

    def visit(obj):
        if obj is None or id(obj) in seen:
            return
        seen.add(id(obj))
        out.append(obj)
        children = []
        if isinstance(obj, torch.nn.Module):
            children.extend(obj.children())
        parts = getattr(obj, "augmentations", None)
        if isinstance(parts, dict):
            children.extend(parts.values())
        elif isinstance(parts, list | tuple):
            children.extend(parts)
        for child in children:
            visit(child)

    visit(augment)
    return out


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

    @staticmethod
    def _iterators(part):
        return {
            name: value for name, value in vars(part).items()
            if isinstance(value, torch.utils.data.dataloader._BaseDataLoaderIter)
        }

    @mark_as_saver
    def save(self, path):
        """Write the loader positions to ``path`` (JSON)."""
        parts = []
        for part in _augment_parts(self.augment):
            loader = getattr(part, "data_loader", None)
            if not isinstance(loader, torch.utils.data.DataLoader):
                parts.append(None)
                continue
            positions = {name: int(it._num_yielded) for name, it in self._iterators(part).items()}
            parts.append({"batch_size": loader.batch_size, "positions": positions})
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"format": 1, "parts": parts}, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Recreate the loaders saved at ``path`` and move them to their saved positions."""
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)["parts"]
        parts = _augment_parts(self.augment)
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
            if hasattr(loader, "_speechbrain_recovery_skip_to"):  # SaveableDataLoader fast-forwards its sampler
                loader._speechbrain_recovery_skip_to = count
                setattr(part, name, iter(loader))
            else:
                iterator = iter(loader)
                for _ in range(count):
                    next(iterator)
                setattr(part, name, iterator)


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
    >>> brain = SimpleNamespace(epoch_stats=EpochStats(), audio_issues=sx_data.AudioIssueCounter(seen=3))
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


class SpeakerBrain(sb.core.Brain):
    """ECAPA-TDNN + AAM-softmax speaker-embedding training (the baseline), with hooks.

    Subclasses override :meth:`add_train_items`, :meth:`prepare_waveforms`,
    :meth:`compute_features` or :meth:`compute_losses`; everything else (data,
    sampler, validation by EER, skipped-audio accounting, evaluation) is shared.

    Expected hparams: ``compute_features``, ``mean_var_norm``, ``embedding_model``,
    ``classifier`` (in ``modules``), ``aam_loss``, ``loss_balancer``, ``wav_augment``
    (or null), ``train_annotation``, ``valid_annotation``, ``valid_trials_dir``,
    ``data_folder``, ``sample_rate``, ``crop_seconds``, ``n_speakers``,
    ``max_skipped_share``, ``epoch_counter``, ``lr_annealing``, ``train_logger``.

    Example
    -------
    >>> issubclass(SpeakerBrain, sb.core.Brain)
    True
    """

    #: Restores a resumed epoch's statistics (set in :meth:`on_fit_start`).
    epoch_progress = None
    #: The last training stage's statistics (None before the first epoch ends, e.g. validation only).
    train_stats = None
    #: Readable batches of this rank dropped this epoch because another rank's batch was all unreadable.
    steps_skipped_for_other_ranks = 0

    # ---------------------------------------------------------------- data hooks
    def make_datasets(self):
        """Build the training and validation datasets (called once before :meth:`fit`)."""
        hp = self.hparams
        train = sx_data.load_dataset(hp.train_annotation, hp.data_folder, self.train_columns())
        self.label_encoder = sx_data.speaker_label_encoder(
            train, os.path.join(hp.save_folder, "label_encoder.txt"), expected=hp.n_speakers
        )
        self.crop_reader = sx_data.AudioReader(hp.sample_rate, hp.crop_seconds, seed=hp.seed)
        sx_data.add_audio(train, self.crop_reader)
        sx_data.add_speaker_label(train, self.label_encoder)
        self.add_train_items(train)
        train.set_output_keys(self.train_output_keys())
        valid = verification.utterance_dataset(hp.valid_annotation, hp.data_folder, hp.sample_rate)
        self.train_set = train
        return train, valid

    def train_columns(self):
        """Manifest columns the training set needs."""
        return sx_data.REQUIRED_COLUMNS

    def add_train_items(self, dataset):
        """Hook: add dynamic items to the training set (e.g. a parallel partner)."""

    def train_output_keys(self):
        """Keys of a training example."""
        return ["id", "sig", "audio_issue", "spk_id_encoded"]

    def train_loader_options(self, dataset):
        """DataLoader options for training: P×K batch sampler from YAML, or shuffled batches."""
        hp = self.hparams
        options = dict(hp.train_dataloader_opts)
        options["collate_fn"] = sx_data.collate_skipping
        if hp.train_sampler is not None:
            labels = sx_data.manifest_column(dataset, "spk_id")
            partition = {}  # under torchrun: speaker-disjoint ranks (see _train_loader_specifics)
            if self.distributed_launch and torch.distributed.is_initialized():
                import inspect

                if {"rank", "world_size"} <= set(inspect.signature(hp.train_sampler).parameters):
                    partition = {"rank": torch.distributed.get_rank(), "world_size": torch.distributed.get_world_size()}
            sampler = hp.train_sampler(labels=labels, seed=hp.seed, **partition)
            self.checkpointer.add_recoverable("train_sampler", sampler)
            # Brain calls set_epoch only on self.train_sampler, which it does not set for a batch_sampler.
            self.batch_sampler = self.train_sampler = sampler
            for exclusive in ("batch_size", "shuffle", "sampler", "drop_last"):
                options.pop(exclusive, None)
            options["batch_sampler"] = sampler
        else:
            self.batch_sampler = None
            options.setdefault("shuffle", True)
        return options

    def _train_loader_specifics(self, dataset, loader_kwargs):
        """Under DDP, a rank-partitioned P×K sampler is used as it is, not wrapped by SpeechBrain.

        SpeechBrain wraps any ``batch_sampler`` in ``DistributedSamplerWrapper`` (whole
        batches of one global sequence per rank). A
        :class:`~speechbrain_ext.sampling.SpeakerBalancedBatchSampler` built with
        ``rank``/``world_size`` (see :meth:`train_loader_options`) already gives each rank
        ``P`` speakers of every global batch of ``P x W`` distinct speakers, so the ranks
        see disjoint speakers at each step; it is registered as ``train_sampler`` so that
        Brain calls its ``set_epoch``.
        """
        from speechbrain_ext.sampling import SpeakerBalancedBatchSampler

        sampler = loader_kwargs.get("batch_sampler")
        if (
            self.distributed_launch
            and isinstance(sampler, SpeakerBalancedBatchSampler)
            and sampler.world_size > 1
        ):
            self.train_sampler = sampler
            return loader_kwargs
        return super()._train_loader_specifics(dataset, loader_kwargs)

    def valid_loader_options(self):
        """DataLoader options for embedding extraction (validation and evaluation)."""
        options = dict(self.hparams.eval_dataloader_opts)
        options["collate_fn"] = sx_data.collate_skipping
        return options

    # ---------------------------------------------------------------- model hooks
    def prepare_waveforms(self, batch, stage):
        """Hook: return ``(wavs, lens, labels)`` for the encoder; applies wav augmentation in training."""
        wavs, lens = batch.sig
        labels = batch.spk_id_encoded.data if stage == sb.Stage.TRAIN else None
        augment = self.hparams.wav_augment
        if stage == sb.Stage.TRAIN and augment is not None:
            wavs, lens = augment(wavs, lens)
            labels = augment.replicate_labels(labels)
        return wavs, lens, labels

    def compute_features(self, wavs, lens, stage):
        """Hook: features fed to the encoder (Fbank → mean-variance norm)."""
        feats = self.modules.compute_features(wavs)
        return self.modules.mean_var_norm(feats, lens)

    def encode(self, wavs, lens, stage=sb.Stage.TEST):
        """Embeddings ``[B, 1, D]`` of a padded batch of waveforms."""
        feats = self.compute_features(wavs, lens, stage)
        return self.modules.embedding_model(feats, lens)

    def compute_forward(self, batch, stage):
        """Waveforms → embeddings (and cosine logits in training)."""
        batch = batch.to(self.device)
        wavs, lens, labels = self.prepare_waveforms(batch, stage)
        embeddings = self.encode(wavs, lens, stage)
        logits = self.modules.classifier(embeddings) if stage == sb.Stage.TRAIN else None
        return SimpleNamespace(embeddings=embeddings, logits=logits, labels=labels, lens=lens, batch=batch)

    def compute_losses(self, outputs):
        """Hook: the named loss terms of a training step (the baseline: AAM-softmax)."""
        return {"aam": self.hparams.aam_loss(outputs.logits, outputs.labels)}

    def compute_objectives(self, outputs, batch, stage):
        """Combine the loss terms with the YAML's balancer (fixed weights or MGDA)."""
        losses = self.compute_losses(outputs)
        loss, stats = self.hparams.loss_balancer(losses, outputs.embeddings)
        self.epoch_stats.add({**{k: v.detach() for k, v in losses.items()}, **stats})
        return loss

    # ---------------------------------------------------------------- training loop
    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """SpeechBrain's, with a private generator for the training loader.

        Creating a DataLoader iterator draws a seed from the global torch generator; a
        run resumed mid-epoch creates its iterator after restoring the RNG state, so
        that draw would shift every later augmentation draw. The private generator
        keeps iterator creation out of the global stream.
        """
        if stage == sb.Stage.TRAIN and loader_kwargs.get("generator") is None:
            loader_kwargs["generator"] = torch.Generator().manual_seed(int(getattr(self.hparams, "seed", 0)))
        return super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)

    def on_fit_start(self):
        """Register the RNG, augmentation and epoch-progress states before SpeechBrain recovers them."""
        if "rng_state" not in self.checkpointer.recoverables:
            self.checkpointer.add_recoverable("rng_state", RNGState())
        augment = getattr(self.hparams, "wav_augment", None)
        if augment is not None and "augment_state" not in self.checkpointer.recoverables:
            # optional: checkpoints written before these states existed still load
            self.checkpointer.add_recoverable("augment_state", AugmentState(augment), optional_load=True)
        if "epoch_progress" not in self.checkpointer.recoverables:
            self.epoch_progress = EpochProgress(self)
            self.checkpointer.add_recoverable("epoch_progress", self.epoch_progress, optional_load=True)
        super().on_fit_start()

    def fit_batch(self, batch):
        """Count unreadable utterances, skip an all-unreadable batch, stop on a non-finite loss.

        Also times the step and the wait for this batch since the previous step ended (the
        time the data loader kept the training step waiting), logged per epoch as
        ``loader_wait_seconds`` and ``step_seconds``.
        """
        start = time.perf_counter()
        if self._previous_step_end is not None:
            self.loader_wait_seconds += start - self._previous_step_end
        self.audio_issues.update(batch.all_issues, batch.all_ids)
        self._check_skipped_share()
        # Under DDP every rank must skip together, or the others would wait for this rank's gradients.
        skip = sx_distributed.any_rank(batch.batchsize == 0, self.device)
        if skip and batch.batchsize:
            self.steps_skipped_for_other_ranks += 1  # this rank's readable batch is dropped: say so
        loss = torch.tensor(0.0) if skip else super().fit_batch(batch)
        self._previous_step_end = time.perf_counter()
        self.step_seconds += self._previous_step_end - start
        return loss

    def check_loss_isfinite(self, loss):
        """A non-finite loss stops training at once, before any step or checkpoint uses it."""
        if not torch.isfinite(loss):
            raise TrainingAborted(
                f"loss is {float(loss)} at epoch {self.hparams.epoch_counter.current}, step {self.step}; "
                "training stopped and no checkpoint was written after the last good one "
                f"(last: {self._last_checkpoint_name()})"
            )

    def _last_checkpoint_name(self):
        ckpts = self.checkpointer.list_checkpoints()
        return os.path.basename(max(ckpts, key=lambda c: c.meta.get("unixtime", 0)).path) if ckpts else None

    def _check_skipped_share(self):
        counter, limit = self.audio_issues, self.hparams.max_skipped_share
        # A minimum count keeps one bad file in a tiny first batch from aborting a run.
        if counter.skipped and counter.seen >= 100 and counter.skipped_share > limit:
            raise TrainingAborted(
                f"{counter.skipped} of {counter.seen} utterances ({counter.skipped_share:.1%}) could not be read, "
                f"more than max_skipped_share={limit:.1%}; first: {counter.first_errors}"
            )

    def on_stage_start(self, stage, epoch=None):
        """Reset the per-epoch statistics; move the crop positions to this epoch."""
        self.epoch_stats = EpochStats()
        self.stage_start_time = time.time()
        if stage == sb.Stage.TRAIN:
            self.loader_wait_seconds = self.step_seconds = 0.0
            self.steps_skipped_for_other_ranks = 0
            self._previous_step_end = None
            self.audio_issues = sx_data.AudioIssueCounter()
            if self.epoch_progress is not None:
                self.epoch_progress.apply(self.epoch_stats, self.audio_issues)
            self.crop_reader.set_epoch(epoch)
        else:
            self.valid_ids, self.valid_embeddings = [], []

    def evaluate_batch(self, batch, stage):
        """Validation: collect embeddings, the loss is the EER computed at the end of the stage."""
        if batch.batchsize:
            wavs, lens = batch.to(self.device).sig
            self.valid_embeddings.append(self.encode(wavs, lens, stage)[:, 0].float().cpu())
            self.valid_ids.extend(batch.id)
        return torch.tensor(0.0)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log the epoch; after validation, score the valid trials and checkpoint by their EER."""
        elapsed = time.time() - self.stage_start_time
        if stage == sb.Stage.TRAIN:
            self.train_stats = {
                "loss": stage_loss,
                **self.epoch_stats.summary(),
                "seconds": round(elapsed, 1),
                "step_seconds": round(self.step_seconds, 1),
                "loader_wait_seconds": round(self.loader_wait_seconds, 1),
            }
            self.train_stats.update(self.extra_train_stats())
            counter = self.audio_issues
            if counter.skipped or counter.resampled or counter.downmixed:
                self.train_stats.update(
                    skipped=counter.skipped, resampled=counter.resampled, downmixed=counter.downmixed
                )
            return
        if stage != sb.Stage.VALID:
            return
        metrics = self.score_valid()
        old_lr, new_lr = self.hparams.lr_annealing(epoch)
        sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, "lr": old_lr},
            train_stats=self.train_stats,
            valid_stats={**metrics, "seconds": round(elapsed, 1)},
        )
        self.checkpointer.save_and_keep_only(
            meta={"EER": metrics["EER"], "epoch": epoch},
            min_keys=["EER"],
            num_to_keep=self.hparams.keep_checkpoints,
        )

    def extra_train_stats(self):
        """Hook: further per-epoch training statistics (sampler or partner fallbacks...)."""
        stats = {}
        # SpeakerBalancedBatchSampler counts speakers with fewer than K utterances (drawn with replacement)
        undersized = getattr(self.batch_sampler, "num_undersized_speakers", 0) if self.batch_sampler else 0
        if undersized:
            stats["speakers_with_replacement"] = undersized
        if self.steps_skipped_for_other_ranks:
            stats["steps_skipped_for_other_ranks"] = self.steps_skipped_for_other_ranks
        return stats

    def score_valid(self):
        """EER (%) and minDCF of the validation trials on the collected embeddings."""
        embeddings = torch.cat(self.valid_embeddings) if self.valid_embeddings else torch.zeros(0, 1)
        result = verification.score_trial_dir(
            self.valid_ids, embeddings, self.hparams.valid_trials_dir, conditions=[self.hparams.valid_condition]
        )
        cond = result[self.hparams.valid_condition]
        return {"EER": round(100 * cond["eer"], 4), "minDCF": round(cond["min_dcf"], 5)}
