"""Contrastive speaker training (Li, Mak & Meng, ICASSP 2023) as one overridden hook.

:class:`ContrastiveSpeakerBrain` adds a term named ``"contrastive"`` to the baseline's
losses: SupCon or AM-SupCon (``hparams.contrastive_loss``), with the negatives
optionally weighted by class-aware attention (``hparams.class_aware_attention``,
computed from the classifier's cosine logits). How the terms combine — fixed
weights or MGDA — is the YAML's ``loss_balancer``; the Brain does not know.

Under ``torchrun`` with ``contrastive_gather: True`` the term is computed on the
embeddings, labels and logits of EVERY rank (:mod:`speechbrain_ext.distributed`):
all-vs-all on the gathered batch, its gradient scaled by the world size so that
DDP's gradient average equals the single-process gradient on the concatenated
batch. ``False`` (or a missing key, or one process) keeps the negatives local.
"""

from speechbrain_ext import distributed
from speechbrain_ext.brains.speaker import SpeakerBrain
from speechbrain_ext.losses import negative_mask


class ContrastiveSpeakerBrain(SpeakerBrain):
    """A :class:`SpeakerBrain` whose training step adds a (margin) supervised contrastive term.

    Expected hparams besides the baseline's: ``contrastive_loss`` (e.g.
    :class:`speechbrain_ext.losses.AngularMarginSupConLoss`, or null for the plain
    baseline) and ``class_aware_attention`` (:class:`speechbrain_ext.losses.ClassAwareAttention`
    or null). Logged per epoch: each loss, α of MGDA (mean and range), the mean CAA
    weight and the fraction of anchors with a positive.

    Example
    -------
    >>> issubclass(ContrastiveSpeakerBrain, SpeakerBrain)
    True
    """

    def compute_losses(self, outputs):
        """The baseline's terms plus ``"contrastive"`` on the same embeddings."""
        losses = super().compute_losses(outputs)
        if self.hparams.contrastive_loss is not None:
            losses["contrastive"] = self.contrastive_term(outputs.embeddings, outputs.logits, outputs.labels)
        return losses

    def contrastive_term(self, embeddings, logits, labels):
        """(AM-)SupCon of a batch, its negatives weighted by class-aware attention when configured.

        With ``hparams.contrastive_gather`` under DDP, the batch is that of every rank
        (see :func:`speechbrain_ext.distributed.gather_batch`).
        """
        hp = self.hparams
        labels = labels.reshape(-1)
        if hp.contrastive_gather and distributed.is_distributed():
            embeddings, logits, labels = distributed.gather_batch(embeddings, logits, labels)
        weights = None
        if hp.class_aware_attention is not None:
            weights = hp.class_aware_attention(logits, labels)
            negatives = negative_mask(labels)
            if negatives.any():
                # Row-normalised weights average 1 by construction: their spread is what CAA changes.
                self.epoch_stats.add({"caa_weight_std": weights[negatives].std()})
        try:
            loss = hp.contrastive_loss(embeddings, labels, negative_weights=weights)
        except ValueError as err:
            raise ValueError(f"{err} — batch sampler: {self._sampler_description()}") from err
        stats = getattr(hp.contrastive_loss, "last_stats", {})
        if "frac_anchors_with_positives" in stats:
            self.epoch_stats.add({"anchors_with_positives": stats["frac_anchors_with_positives"]})
        return loss

    def _sampler_description(self):
        sampler = self.batch_sampler
        if sampler is None:
            return (
                "shuffled batches without speaker balancing (train_sampler: null); use "
                "speechbrain_ext.sampling.SpeakerBalancedBatchSampler so every anchor has a positive"
            )
        return f"P={sampler.speakers_per_batch} speakers x K={sampler.utterances_per_speaker} utterances"
