"""Emotion-invariant speaker embeddings (methods.md B): CopyPaste, parallel cosine loss, emotion-aware masking.

:class:`EmotionInvariantBrain` overrides these hooks of
:class:`~speechbrain_ext.brains.speaker.SpeakerBrain` (plus the per-epoch bookkeeping
ones) and copies nothing else::

    add_train_items     data pipeline (DataLoader workers): partner pick (same speaker,
                        other emotion) → partner crop → CopyPaste → "parallel_sig",
                        plus "partner_kind" (counted per epoch in the main process)
    prepare_waveforms   [x_1..x_B, x'_1..x'_B] as ONE batch of 2B (common padding,
                        relative lengths recomputed), labels duplicated, then the
                        baseline's wav augmentation on the whole 2B batch
    compute_features    baseline features (Fbank → mean norm), then EnergyEmotionMask on
                        the parallel half or on both halves (training only), from the
                        energy of the augmented waveforms
    compute_losses      "aam" (original half, through super(): other Brains' terms come
                        along), "aam_parallel", "parallel_cos"

The loss of methods.md B.2, ``L = AAM(e) + AAM(e') + λ·L_cos``, is the YAML balancer
``FixedWeights(weights={aam: 1, aam_parallel: 1, parallel_cos: λ})``.

**Batch size.** ``batch_size`` keeps its meaning, original utterances per batch; the
encoder sees ``2 × batch_size`` inputs (what that costs per epoch: the time table of
``results/ablation_emotion.md``). The pipeline pieces live in
:mod:`speechbrain_ext.partners` (partner pick, CopyPaste item) and
:mod:`speechbrain_ext.parallel` (joined batch, row layout).

**Composition.** ``super().compute_losses`` receives a view of the ORIGINAL half only
(embeddings, logits, labels, lens of rows ``x_1..x_B``). So ``"aam"`` is ``AAM(e)``,
and a term another Brain adds in its ``compute_losses`` (e.g. the contrastive term of
``ContrastiveSpeakerBrain`` in ``class EmotionContrastiveBrain(EmotionInvariantBrain,
ContrastiveSpeakerBrain)``) is computed on exactly the batch it would see in its own
system (the P×K sampler's positives, the head's logits of the same rows): the parallel
samples reach the model through their own two terms and do not change the meaning or
the scale of anyone else's term. The balancer still receives the embeddings of the full
2B batch as the shared representation, so MGDA's gradients cover every row.
:class:`GroupedBalancer` sums named terms into groups before an inner balancer, for a
balancer that takes a fixed number of losses (MGDA takes two).
"""

import logging
from collections import Counter

import speechbrain as sb
import torch

from speechbrain_ext.brains.contrastive import ContrastiveSpeakerBrain
from speechbrain_ext.brains.speaker import SpeakerBrain
from speechbrain_ext.parallel import BatchView, ParallelLayout, join_halves, select_rows
from speechbrain_ext.partners import ALL_PARTNER_KINDS, add_parallel_item, make_partners

logger = logging.getLogger(__name__)

__all__ = ["EmotionContrastiveBrain", "EmotionInvariantBrain"]


class EmotionInvariantBrain(SpeakerBrain):
    """Speaker embeddings trained on CopyPaste parallel data with a cosine loss and emotion-aware masking.

    Hyperparameters read besides the baseline's (all optional; null disables):

    - ``copypaste``: a :class:`~speechbrain_ext.augment.CopyPaste`; null gives exactly
      :class:`SpeakerBrain` (no parallel sample, no extra term);
    - ``require_emotion`` (default True): a training manifest without an ``emotion``
      column is an error naming the column; False falls back to speaker-only partners;
    - ``copypaste_partner``: null (same speaker, other emotion: the method) or ``self``
      (the utterance itself, read as a second crop: the equal-compute control,
      :class:`~speechbrain_ext.partners.SelfPartners`);
    - ``parallel_cos_loss``: a :class:`~speechbrain_ext.losses.ParallelCosineLoss`; its
      term ``"parallel_cos"`` is weighted by the balancer (λ); null drops the term;
    - ``emotion_mask``: an :class:`~speechbrain_ext.augment.EnergyEmotionMask`; its
      ``apply_to`` picks the parallel half or both halves. Applied to the normalised
      features in training only, on the (augmented) waveforms' energy.

    Logged per epoch (train stats): each loss term, ``partners_<kind>`` for every partner
    kind that occurred (fallbacks included, ``unreadable_partner_fallback`` when the
    partner audio failed and ``x`` itself was used), ``partner_fallback_share``, and
    ``em_masked_share`` (mean masked share of the valid frames of the masked inputs).

    Example
    -------
    >>> issubclass(EmotionInvariantBrain, SpeakerBrain)
    True
    >>> EmotionInvariantBrain.parallel_loss_names
    ('aam_parallel', 'parallel_cos')
    """

    parallel_loss_names = ("aam_parallel", "parallel_cos")
    #: Where each encoder row of the current training batch comes from (None outside training).
    _layout = None
    #: Partner kinds drawn this epoch (a Counter once training starts).
    partner_counts = None

    # ---------------------------------------------------------------- options
    @property
    def uses_parallel(self):
        """Whether a CopyPaste parallel sample is built (``hparams.copypaste`` is not null)."""
        return self.hparams.copypaste is not None

    # ---------------------------------------------------------------- data hooks
    def add_train_items(self, dataset):
        """Add ``parallel_sig`` (the CopyPaste of the crop) and ``partner_kind`` to the training set."""
        super().add_train_items(dataset)
        mask = self.hparams.emotion_mask
        if not self.uses_parallel:
            if mask is not None and mask.apply_to == "parallel":
                raise ValueError(
                    "emotion_mask.apply_to is 'parallel' but copypaste is null, so there is no parallel input "
                    "to mask; set copypaste, or apply_to: both"
                )
            return
        self.partners = make_partners(
            dataset, seed=self.hparams.seed, require_emotion=self.hparams.require_emotion,
            manifest=self.hparams.train_annotation, partner=self.hparams.copypaste_partner,
        )
        add_parallel_item(dataset, self.partners, self.crop_reader, self.hparams.copypaste, self.hparams.seed)
        if self.partners.kind_totals.get("other_emotion", 0) < len(self.partners):
            logger.info("CopyPaste partner kinds over the training manifest: %s", self.partners.kind_totals)

    def train_output_keys(self):
        """The baseline keys, plus ``parallel_sig`` and ``partner_kind`` when CopyPaste is on."""
        keys = super().train_output_keys()
        return [*keys, "parallel_sig", "partner_kind"] if self.uses_parallel else keys

    # ---------------------------------------------------------------- model hooks
    def prepare_waveforms(self, batch, stage):
        """Training with CopyPaste: one batch of ``[x; x']`` (2B rows), labels duplicated, then wav augmentation."""
        self._layout = None
        if stage != sb.Stage.TRAIN or not self.uses_parallel:
            return super().prepare_waveforms(batch, stage)
        self.partner_counts.update(batch.partner_kind)
        wavs, lens = join_halves(batch.sig, batch.parallel_sig)
        labels = batch.spk_id_encoded.data
        view = BatchView(batch, (wavs, lens), torch.cat([labels, labels]))
        wavs, lens, labels = super().prepare_waveforms(view, stage)
        n = batch.sig[0].shape[0]
        source = torch.arange(2 * n, device=labels.device)
        augment = self.hparams.wav_augment
        if augment is not None:
            # The augmenter's own label bookkeeping tells where each output row comes from.
            source = augment.replicate_labels(source)
        self._layout = ParallelLayout(source, n)
        if self._layout.source.numel() != wavs.shape[0]:
            raise RuntimeError(
                f"wav augmentation returned {wavs.shape[0]} rows but its labels describe {source.numel()}"
            )
        return wavs, lens, labels

    def compute_features(self, wavs, lens, stage):
        """Baseline features; in training, emotion-aware masking on the parallel half or on every input."""
        feats = super().compute_features(wavs, lens, stage)
        mask_fn = self.hparams.emotion_mask
        if stage != sb.Stage.TRAIN or mask_fn is None:
            return feats
        layout = self._layout
        if layout is not None and mask_fn.apply_to == "parallel":
            rows = layout.parallel_rows.to(feats.device)
        elif mask_fn.apply_to == "both":
            rows = None
        else:  # "parallel" without parallel inputs: rejected in add_train_items
            return feats
        if rows is None:
            masked, mask = mask_fn(feats, wavs, lens)
            sel_lens = lens
        else:
            masked_rows, mask = mask_fn(feats[rows], wavs[rows], lens[rows])
            masked = feats.index_copy(0, rows, masked_rows)
            sel_lens = lens[rows]
        t_valid = torch.round(sel_lens.to(feats.device).float() * feats.shape[1]).clamp_min(1.0)
        share = (mask.sum(dim=1).float() / t_valid).mean()
        self.epoch_stats.add({"em_masked_share": share.detach()})
        return masked

    def compute_forward(self, batch, stage):
        """The baseline forward; the outputs also carry the batch layout (``outputs.parallel``)."""
        outputs = super().compute_forward(batch, stage)
        outputs.parallel = self._layout if stage == sb.Stage.TRAIN else None
        return outputs

    def compute_losses(self, outputs):
        """``super()``'s terms on the original half, plus ``"aam_parallel"`` and ``"parallel_cos"``.

        Without parallel inputs (``outputs.parallel`` is None) the terms are exactly the baseline's.
        """
        layout = getattr(outputs, "parallel", None)
        if layout is None:
            return super().compute_losses(outputs)
        losses = super().compute_losses(select_rows(outputs, layout.original_rows))
        clash = [k for k in self.parallel_loss_names if k in losses]
        if clash:
            raise KeyError(f"loss term(s) {clash} already produced by a base class of {type(self).__name__}")
        parallel = select_rows(outputs, layout.parallel_rows)
        losses["aam_parallel"] = self.hparams.aam_loss(parallel.logits, parallel.labels)
        cos_loss = self.hparams.parallel_cos_loss
        if cos_loss is not None:
            first, second = (idx.to(outputs.embeddings.device) for idx in layout.pairs)
            losses["parallel_cos"] = cos_loss(outputs.embeddings[first], outputs.embeddings[second])
        return losses

    # ---------------------------------------------------------------- bookkeeping
    def on_stage_start(self, stage, epoch=None):
        """Baseline resets; a new per-epoch tally of partner kinds in training."""
        super().on_stage_start(stage, epoch)
        self._layout = None
        if stage == sb.Stage.TRAIN:
            self.partner_counts = Counter()

    def extra_train_stats(self):
        """Baseline statistics plus partner kinds and the share of fallbacks."""
        stats = super().extra_train_stats()
        counts = self.partner_counts
        if not self.uses_parallel or not counts:
            return stats
        total = sum(counts.values())
        for kind in ALL_PARTNER_KINDS:
            if counts.get(kind):
                stats[f"partners_{kind}"] = counts[kind]
        fallbacks = sum(n for kind, n in counts.items() if kind.endswith("_fallback"))
        stats["partner_fallback_share"] = round(fallbacks / total, 6) if total else 0.0
        return stats


class EmotionContrastiveBrain(EmotionInvariantBrain, ContrastiveSpeakerBrain):
    """Both papers' training together: CopyPaste, ``L_cos``, EM and the (AM-)SupCon term.

    Nothing is overridden: the method resolution order
    ``EmotionContrastiveBrain → EmotionInvariantBrain → ContrastiveSpeakerBrain → SpeakerBrain``
    makes :meth:`EmotionInvariantBrain.compute_losses` hand the ORIGINAL half of the 2B
    batch to :meth:`ContrastiveSpeakerBrain.compute_losses`, which adds ``"contrastive"``
    to ``"aam"`` on it (the same batch as in the contrastive system alone), and then adds
    ``"aam_parallel"`` and ``"parallel_cos"``. With MGDA (two losses) the YAML groups the
    terms with :class:`GroupedBalancer`.

    Example
    -------
    >>> [c.__name__ for c in EmotionContrastiveBrain.__mro__[:4]]
    ['EmotionContrastiveBrain', 'EmotionInvariantBrain', 'ContrastiveSpeakerBrain', 'SpeakerBrain']
    """
