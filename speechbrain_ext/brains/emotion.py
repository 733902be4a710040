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
encoder sees ``2 × batch_size`` inputs, so a training step costs about twice a
baseline step (measured on one CPU thread: 1.9× at ECAPA width 64, 2.5× at width 256,
where the encoder's own cost grows faster than the batch).

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

import hashlib
import logging
from collections import Counter
from types import SimpleNamespace

import speechbrain as sb
import torch

from speechbrain_ext import data as sx_data
from speechbrain_ext.augment import PARTNER_KINDS, CopyPastePartners
from speechbrain_ext.brains.contrastive import ContrastiveSpeakerBrain
from speechbrain_ext.brains.speaker import SpeakerBrain

logger = logging.getLogger(__name__)

__all__ = [
    "EmotionContrastiveBrain",
    "EmotionInvariantBrain",
    "ParallelLayout",
    "UNREADABLE_PARTNER",
    "copypaste_seed",
    "join_halves",
]

#: ``partner_kind`` of an example whose partner audio could not be read: ``x`` itself was used.
UNREADABLE_PARTNER = "unreadable_partner_fallback"
#: Every value ``partner_kind`` can take, in reporting order.
ALL_PARTNER_KINDS = (*PARTNER_KINDS, UNREADABLE_PARTNER)


def copypaste_seed(seed, epoch, utt_id):
    """Seed of the CopyPaste draw of one utterance, from ``(seed, epoch, id)`` only.

    A keyed BLAKE2 hash (not Python's salted ``hash``), so every DataLoader worker, every
    process and a resumed run draw the same ratio, order and crops.

    Example
    -------
    >>> copypaste_seed(1986, 3, "S0001_000001") == copypaste_seed(1986, 3, "S0001_000001")
    True
    >>> copypaste_seed(1986, 3, "S0001_000001") == copypaste_seed(1986, 4, "S0001_000001")
    False
    >>> 0 <= copypaste_seed(0, 0, "a") < 2**63
    True
    """
    key = f"{seed}\x1f{epoch}\x1f{utt_id}\x1fcopypaste".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & (2**63 - 1)


def join_halves(first, second):
    """Stack two padded batches ``(wavs [B, S1], lens)`` and ``(wavs [B, S2], lens)`` into one of 2B.

    Both are zero-padded to ``S = max(S1, S2)`` and the relative lengths are recomputed
    from the absolute ones (``round(lens * S_k) / S``), so every row keeps its samples.

    Returns
    -------
    wavs : torch.Tensor
        ``[2B, S]``, the rows of ``first`` then those of ``second``.
    lens : torch.Tensor
        ``[2B]`` relative lengths in ``(0, 1]``.

    Example
    -------
    >>> a = (torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 0.0, 0.0]]), torch.tensor([1.0, 0.5]))
    >>> b = (torch.ones(2, 8), torch.tensor([0.5, 1.0]))
    >>> wavs, lens = join_halves(a, b)
    >>> wavs.shape, lens.tolist()
    (torch.Size([4, 8]), [0.5, 0.25, 0.5, 1.0])
    >>> wavs[1].tolist()  # 2 valid samples of 4, then padding
    [5.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    (wa, la), (wb, lb) = first, second
    if wa.shape[0] != wb.shape[0]:
        raise ValueError(f"the two halves differ in batch size: {wa.shape[0]} vs {wb.shape[0]}")
    size = max(wa.shape[1], wb.shape[1])
    abs_a = torch.round(la.float() * wa.shape[1])
    abs_b = torch.round(lb.float() * wb.shape[1])
    wavs = torch.cat(
        [
            torch.nn.functional.pad(wa, (0, size - wa.shape[1])),
            torch.nn.functional.pad(wb, (0, size - wb.shape[1])),
        ]
    )
    lens = torch.cat([abs_a, abs_b]) / size
    return wavs, lens.to(la.dtype if la.is_floating_point() else torch.float32)


class ParallelLayout:
    """Which rows of a training batch are originals ``x``, which are parallels ``x'``, and their pairs.

    ``source[r]`` is the row of the joined 2B batch (before wav augmentation) that row
    ``r`` comes from: ``source < B`` is an original, ``source >= B`` a parallel sample.
    The baseline's augmenter keeps ``source = arange(2B)``; an augmenter that
    concatenates the clean batch or repeats augmentations replicates rows, and
    ``source`` (obtained with the augmenter's own ``replicate_labels``) tracks them.
    Pairs match the k-th copy of ``x_i`` with the k-th copy of ``x'_i``.

    Arguments
    ---------
    source : torch.Tensor
        ``[N]`` integer source row of every row of the batch.
    batch_size : int
        ``B``, the number of original utterances.

    Example
    -------
    >>> layout = ParallelLayout(torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), 2)  # clean + augmented copy
    >>> layout.original_rows.tolist(), layout.parallel_rows.tolist()
    ([0, 1, 4, 5], [2, 3, 6, 7])
    >>> [t.tolist() for t in layout.pairs]
    [[0, 4, 1, 5], [2, 6, 3, 7]]
    """

    def __init__(self, source, batch_size):
        source = torch.as_tensor(source).reshape(-1).long().cpu()
        self.source = source
        self.batch_size = int(batch_size)
        parallel = source >= self.batch_size
        self.is_parallel = parallel
        self.original_rows = torch.nonzero(~parallel).reshape(-1)
        self.parallel_rows = torch.nonzero(parallel).reshape(-1)
        rows_of = {}
        for row, src in enumerate(source.tolist()):
            rows_of.setdefault(src, []).append(row)
        first, second = [], []
        for i in range(self.batch_size):
            for a, b in zip(rows_of.get(i, []), rows_of.get(i + self.batch_size, [])):
                first.append(a)
                second.append(b)
        self.pairs = (torch.tensor(first, dtype=torch.long), torch.tensor(second, dtype=torch.long))

    @classmethod
    def plain(cls, batch_size):
        """The layout of a joined batch that no augmentation reordered (``source = arange(2B)``).

        Example
        -------
        >>> ParallelLayout.plain(3).parallel_rows.tolist()
        [3, 4, 5]
        """
        return cls(torch.arange(2 * batch_size), batch_size)

    def __repr__(self):
        """Sizes of the layout.

        Example
        -------
        >>> ParallelLayout.plain(2)
        ParallelLayout(B=2, rows=4, pairs=2)
        """
        return f"ParallelLayout(B={self.batch_size}, rows={self.source.numel()}, pairs={self.pairs[0].numel()})"


class _BatchView:
    """A training batch with ``sig`` and ``spk_id_encoded`` replaced; other attributes come from the batch."""

    def __init__(self, batch, sig, labels):
        self._batch = batch
        self.sig = sig
        self.spk_id_encoded = SimpleNamespace(data=labels, lengths=None)

    def __getattr__(self, name):
        return getattr(self._batch, name)


def _select(outputs, rows):
    """A view of ``outputs`` (``compute_forward``'s namespace) restricted to ``rows``."""
    rows = rows.to(outputs.embeddings.device)

    def take(x):
        return None if x is None else x.index_select(0, rows.to(x.device))

    return SimpleNamespace(
        embeddings=take(outputs.embeddings),
        logits=take(outputs.logits),
        labels=take(outputs.labels),
        lens=take(outputs.lens),
        batch=outputs.batch,
        parallel=None,
    )


class EmotionInvariantBrain(SpeakerBrain):
    """Speaker embeddings trained on CopyPaste parallel data with a cosine loss and emotion-aware masking.

    Hyperparameters read besides the baseline's (all optional; null disables):

    - ``copypaste``: a :class:`~speechbrain_ext.augment.CopyPaste`; null gives exactly
      :class:`SpeakerBrain` (no parallel sample, no extra term);
    - ``require_emotion`` (default True): a training manifest without an ``emotion``
      column is an error naming the column; False falls back to speaker-only partners;
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
            manifest=self.hparams.train_annotation,
        )
        add_parallel_item(dataset, self.partners, self.crop_reader, self.hparams.copypaste, self.hparams.seed)
        if self.partners.kind_totals["other_emotion"] < len(self.partners):
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
        view = _BatchView(batch, (wavs, lens), torch.cat([labels, labels]))
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
        losses = super().compute_losses(_select(outputs, layout.original_rows))
        clash = [k for k in self.parallel_loss_names if k in losses]
        if clash:
            raise KeyError(f"loss term(s) {clash} already produced by a base class of {type(self).__name__}")
        parallel = _select(outputs, layout.parallel_rows)
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
        fallbacks = total - counts.get("other_emotion", 0)
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


def make_partners(dataset, seed, require_emotion=True, manifest="<manifest>"):
    """The :class:`CopyPastePartners` of a loaded training set (columns ``spk_id`` and ``emotion``).

    Without an ``emotion`` column, ``require_emotion=True`` raises the ``ValueError``
    of :class:`CopyPastePartners` naming the column and the manifest.

    Example
    -------
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> ds = DynamicItemDataset({"a": {"spk_id": "s", "emotion": "sad"}, "b": {"spk_id": "s", "emotion": "happy"}})
    >>> make_partners(ds, seed=0).pick("a")
    'b'
    >>> ds = DynamicItemDataset({"a": {"spk_id": "s"}, "b": {"spk_id": "s"}})
    >>> make_partners(ds, seed=0, require_emotion=False).kind_of("a")
    'speaker_only_fallback'
    """
    ids = list(dataset.data_ids)
    speakers = sx_data.manifest_column(dataset, "spk_id")
    has_emotion = bool(ids) and all("emotion" in dataset.data[i] for i in ids)
    emotions = [dataset.data[i]["emotion"] for i in ids] if has_emotion else None
    return CopyPastePartners(
        ids, speakers, emotions, seed=seed, require_emotion=require_emotion, manifest=str(manifest)
    )


def add_parallel_item(dataset, partners, reader, copypaste, seed):
    """Add the dynamic items ``parallel_sig`` and ``partner_kind`` (computed in the DataLoader workers).

    For utterance ``x`` (item ``sig``, already cropped by ``reader``) in epoch
    ``reader.epoch``: the partner ``u`` from ``partners`` (deterministic in
    ``(seed, epoch, id)``), read with the same ``reader`` (its crop keyed by
    ``"<id>><partner id>"``, so it is not the partner's own crop of the epoch), then
    ``copypaste(x, u)`` seeded with :func:`copypaste_seed`. ``partner_kind`` is the kind
    of the pick, or :data:`UNREADABLE_PARTNER` when ``u`` could not be read and ``x``
    itself was used. An unreadable ``x`` gives an empty ``parallel_sig`` (the example is
    dropped by :func:`~speechbrain_ext.data.collate_skipping` anyway).

    Example
    -------
    >>> import os, tempfile, numpy as np, soundfile as sf
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> from speechbrain_ext.augment import CopyPaste
    >>> d = tempfile.mkdtemp(); sf.write(os.path.join(d, "a.wav"), np.ones(800, "float32") * 0.5, 16000)
    >>> ds = DynamicItemDataset({"a": {"wav": os.path.join(d, "a.wav"), "spk_id": "s", "emotion": "sad"},
    ...                          "b": {"wav": os.path.join(d, "missing.wav"), "spk_id": "s", "emotion": "happy"}})
    >>> reader = sx_data.AudioReader(16000, crop_seconds=0.025)
    >>> _ = sx_data.add_audio(ds, reader)
    >>> add_parallel_item(ds, make_partners(ds, 0), reader, CopyPaste(crossfade=0), seed=0)
    >>> ds.set_output_keys(["sig", "parallel_sig", "partner_kind"])
    >>> ex = ds[0]
    >>> ex["parallel_sig"].shape, ex["partner_kind"]
    (torch.Size([400]), 'unreadable_partner_fallback')
    """
    wav_of = {i: dataset.data[i]["wav"] for i in dataset.data_ids}

    def parallel(utt_id, sig):
        epoch = reader.epoch
        partner, kind = partners.pick(utt_id, epoch=epoch, return_kind=True, count=False)
        if sig.numel() == 0:
            yield sig
            yield kind
            return
        if partner == utt_id:
            partner_sig = sig
        else:
            partner_sig, issue = reader(wav_of[partner], f"{utt_id}>{partner}")
            if issue.startswith(sx_data.ERROR_PREFIX) or partner_sig.numel() == 0:
                partner_sig, kind = sig, UNREADABLE_PARTNER
        generator = torch.Generator().manual_seed(copypaste_seed(seed, epoch, utt_id))
        yield copypaste(sig, partner_sig, generator=generator)
        yield kind

    dataset.add_dynamic_item(parallel, takes=["id", "sig"], provides=["parallel_sig", "partner_kind"])
