"""The speaker-embedding Brain every recipe uses, and the hooks its subclasses override.

Training step::

    prepare_waveforms   (crop already done by the loader) → wav augmentation
    compute_features    Fbank → mean-variance norm
    embedding_model     → embeddings [B, 1, D]
    classifier          → cosine logits [B, 1, C]
    compute_losses      → {"aam": ...}           (subclasses add terms)
    loss_balancer       → one scalar + stats     (fixed weights or MGDA, from YAML)

Validation extracts embeddings of every validation split's speakers in one pass and
scores each split's trial list (:mod:`speechbrain_ext.validation`), so checkpoints are
selected by a verification EER on speakers the model never saw, never on the
evaluation trials: one split's EER or their mean (``checkpoint_selection``,
:mod:`speechbrain_ext.selection`). Each epoch is logged to SpeechBrain's
``train_log.txt`` and, one JSON object per epoch, to ``train_log.jsonl``
(:mod:`speechbrain_ext.epoch_log`).
"""

import inspect
import logging
import os
import time
from types import SimpleNamespace

import speechbrain as sb
import torch
from speechbrain.utils.distributed import if_main_process

from speechbrain_ext import batching, compat, epoch_log, selection, splits, validation
from speechbrain_ext import data as sx_data
from speechbrain_ext import distributed as sx_distributed
from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.resume import AugmentState, EpochProgress, EpochStats, RNGState
from speechbrain_ext.sampling import SpeakerBalancedBatchSampler

logger = logging.getLogger(__name__)


class TrainingAborted(SpeechBrainExtError, RuntimeError):
    """Training cannot go on (non-finite loss, too many unreadable files); nothing was saved after it.

    Example
    -------
    >>> str(TrainingAborted("loss is nan at step 3"))
    'loss is nan at step 3'
    """


class SpeakerBrain(compat.Brain):
    """ECAPA-TDNN + AAM-softmax speaker-embedding training (the baseline), with hooks.

    Subclasses override :meth:`add_train_items`, :meth:`prepare_waveforms`,
    :meth:`compute_features` or :meth:`compute_losses`; everything else (data,
    sampler, validation by EER, skipped-audio accounting, evaluation) is shared.

    Expected hparams: ``compute_features``, ``mean_var_norm``, ``embedding_model``,
    ``classifier`` (in ``modules``), ``aam_loss``, ``loss_balancer``, ``wav_augment``
    (or null), ``train_annotation``, ``valid_splits``, ``checkpoint_selection``,
    ``data_folder``, ``sample_rate``, ``crop_seconds``, ``n_speakers``,
    ``max_skipped_share``, ``epoch_counter``, ``lr_annealing``, ``train_logger``, ``train_log``,
    ``margin_scheduler`` (null, or a :class:`speechbrain_ext.margin.MarginScheduler`
    stepped in :meth:`on_fit_batch_start`), ``speed_perturb`` (null, or a
    :class:`speechbrain_ext.augment.SpeakerSpeedPerturb` applied before ``wav_augment``).

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
    #: Batches of the training loader per epoch (set when it is built; the margin schedule's epoch length).
    train_steps_per_epoch = None

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
        self.valid_splits = splits.parse_splits(hp.valid_splits, "valid_splits")
        self.selection = splits.selection_rule(hp.checkpoint_selection, self.valid_splits)
        valid, self.valid_segments = validation.validation_dataset(
            [s.annotation for s in self.valid_splits], hp.data_folder, hp.sample_rate
        )
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
            partition = {}  # under torchrun: speaker-disjoint ranks (see rank_partitioned_sampler)
            if self.distributed_launch and torch.distributed.is_initialized():
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

    def rank_partitioned_sampler(self, loader_kwargs):
        """Under DDP, a rank-partitioned P×K sampler is used as it is, not wrapped by SpeechBrain.

        SpeechBrain wraps any ``batch_sampler`` in ``DistributedSamplerWrapper`` (whole
        batches of one global sequence per rank). A
        :class:`~speechbrain_ext.sampling.SpeakerBalancedBatchSampler` built with
        ``rank``/``world_size`` (see :meth:`train_loader_options`) already gives each rank
        ``P`` speakers of every global batch of ``P x W`` distinct speakers, so the ranks
        see disjoint speakers at each step (see :class:`speechbrain_ext.compat.Brain`).
        """
        sampler = loader_kwargs.get("batch_sampler")
        if self.distributed_launch and isinstance(sampler, SpeakerBalancedBatchSampler) and sampler.world_size > 1:
            return sampler
        return None

    def valid_loader_options(self):
        """DataLoader options for embedding extraction (validation and evaluation)."""
        options = dict(self.hparams.eval_dataloader_opts)
        options["collate_fn"] = sx_data.collate_skipping
        return options

    def validation_loader_options(self):
        """DataLoader options of the validation stage: with several valid manifests, batches never mix them.

        Each manifest is then batched as if it were validated alone
        (:class:`~speechbrain_ext.validation.SegmentBatches`), so its embeddings, hence its
        EER, do not depend on the other splits. Call after :meth:`make_datasets`.
        """
        options = self.valid_loader_options()
        if len(self.valid_segments) > 1:
            batch_size = options.pop("batch_size", 1)
            for exclusive in ("shuffle", "sampler", "drop_last"):
                options.pop(exclusive, None)
            options["batch_sampler"] = validation.SegmentBatches(self.valid_segments, batch_size)
        return options

    def inference_functions(self, loader_options=None):
        """``(encode, make_loader)`` of the current model, for :mod:`speechbrain_ext.evaluation`.

        The modules are put in eval mode; ``encode(wavs, lens)`` runs :meth:`embed` on the
        Brain's device; ``make_loader(dataset)`` builds a test-stage loader with
        ``loader_options`` (default: :meth:`valid_loader_options`).
        """
        self.modules.eval()
        options = self.valid_loader_options() if loader_options is None else dict(loader_options)

        def encode(wavs, lens):
            return self.embed(wavs.to(self.device), lens.to(self.device))

        def make_loader(dataset):
            return self.make_dataloader(dataset, stage=sb.Stage.TEST, ckpt_prefix=None, **options)

        return encode, make_loader

    # ---------------------------------------------------------------- model hooks
    def prepare_waveforms(self, batch, stage):
        """Hook: return ``(wavs, lens, labels)`` for the encoder.

        In training: speed perturbation (``speed_perturb``, each perturbed speaker a new class),
        then wav augmentation.
        """
        wavs, lens = batch.sig
        labels = batch.spk_id_encoded.data if stage == sb.Stage.TRAIN else None
        if stage == sb.Stage.TRAIN and self.hparams.speed_perturb is not None:
            wavs, lens, labels = self.hparams.speed_perturb(wavs, lens, labels)
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
        """Embeddings ``[B, 1, D]`` of a padded batch of waveforms, as training computes them (see :meth:`embed`)."""
        feats = self.compute_features(wavs, lens, stage)
        return self.modules.embedding_model(feats, lens)

    def embed(self, wavs, lens):
        """Hook: inference embeddings ``[B, 1, D]``, each utterance's as if it were alone in its batch.

        Validation and evaluation extract through this: :func:`speechbrain_ext.batching.embed_batch`
        on the ``compute_features``, ``mean_var_norm`` and ``embedding_model`` modules, so an
        embedding (hence a score, an EER, the selected checkpoint) does not depend on the batch
        size or on what the utterance was batched with (SpeechBrain #1374). :meth:`encode` on
        a padded batch does not have that property. A subclass whose inference features are
        not those modules' overrides this hook.
        """
        modules = self.modules
        return batching.embed_batch(modules.compute_features, modules.mean_var_norm, modules.embedding_model,
                                    wavs, lens)

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
        loader = super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)
        if stage == sb.Stage.TRAIN:
            self.train_steps_per_epoch = len(loader)
        return loader

    def on_fit_start(self):
        """Register the RNG, augmentation, epoch-progress and margin-schedule states before recovery."""
        if "rng_state" not in self.checkpointer.recoverables:
            self.checkpointer.add_recoverable("rng_state", RNGState())
        augment = getattr(self.hparams, "wav_augment", None)
        if augment is not None and "augment_state" not in self.checkpointer.recoverables:
            self.checkpointer.add_recoverable("augment_state", AugmentState(augment))
        if "epoch_progress" not in self.checkpointer.recoverables:
            self.epoch_progress = EpochProgress(self)
            self.checkpointer.add_recoverable("epoch_progress", self.epoch_progress)
        if self.hparams.speed_perturb is not None:
            self.hparams.speed_perturb.check_classifier(self.modules.classifier)
        margin_scheduler = self.hparams.margin_scheduler
        if margin_scheduler is not None and "margin_scheduler" not in self.checkpointer.recoverables:
            self.checkpointer.add_recoverable("margin_scheduler", margin_scheduler)
        super().on_fit_start()

    # ---------------------------------------------------------------- margin schedule (large-margin fine-tuning)
    def on_fit_batch_start(self, batch, should_step):
        """Set this step's loss margins from ``margin_scheduler`` (YAML; null: fixed) and log them per epoch."""
        margin_scheduler = self.hparams.margin_scheduler
        if margin_scheduler is not None:
            self.epoch_stats.add(margin_scheduler.step(steps_per_epoch=self.train_steps_per_epoch))

    def fit_batch(self, batch):
        """Count unreadable utterances, skip an all-unreadable batch, stop on a non-finite loss.

        Also times the step and the wait for this batch since the previous step ended (the
        time the data loader kept the training step waiting), logged per epoch as
        ``loader_wait_seconds`` and ``step_seconds``.

        ``--precision bf16|fp16`` is honoured as SpeechBrain does it, by its ``fit_batch``
        (called below): ``compute_forward`` and ``compute_objectives`` run under its autocast
        context, the backward and the optimizer step outside it (with a ``GradScaler`` for
        fp16 on CUDA). The losses compute in float32 inside (:mod:`speechbrain_ext.precision`).
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
            self.valid_embeddings.append(self.embed(wavs, lens)[:, 0].float().cpu())
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
        per_split = self.score_valid()
        selected = selection.selection_metric(per_split, self.selection)
        old_lr, new_lr = self.hparams.lr_annealing(epoch)
        sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
        valid_stats = dict(selected)
        if len(per_split) > 1:
            valid_stats.update({f"{name}_{k}": v for name, m in per_split.items() for k, v in m.items()})
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, "lr": old_lr},
            train_stats=self.train_stats,
            valid_stats={**valid_stats, "seconds": round(elapsed, 1)},
        )
        if if_main_process():
            epoch_log.write_epoch(epoch_log.log_path(self.hparams.train_log), {
                "epoch": epoch, "lr": old_lr, "train": self.train_stats or {}, "valid": per_split,
                "valid_seconds": round(elapsed, 1), "selection": {"rule": self.selection, **selected},
            })
        selection.keep_best(
            self.checkpointer,
            meta={"EER": selected["EER"], "epoch": epoch, "valid": {n: m["EER"] for n, m in per_split.items()},
                  "selection": self.selection},
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
        """EER (%) and minDCF of every valid split's trial list on the collected embeddings."""
        embeddings = torch.cat(self.valid_embeddings) if self.valid_embeddings else torch.zeros(0, 1)
        return validation.score_valid_splits(self.valid_ids, embeddings, self.valid_splits)
