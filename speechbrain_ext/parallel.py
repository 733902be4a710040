"""The parallel training batch of CopyPaste: originals and parallels in one batch of 2B rows.

:func:`join_halves` stacks the original crops ``x`` and their CopyPaste ``x'`` into
one padded batch; :class:`ParallelLayout` records which rows of the (possibly
augmented) batch are originals, which are parallels and how they pair;
:class:`BatchView` and :func:`select_rows` give the Brain's hooks a batch or the
outputs restricted to some rows.
"""

from types import SimpleNamespace

import torch

__all__ = ["BatchView", "ParallelLayout", "join_halves", "select_rows"]


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


class BatchView:
    """A training batch with ``sig`` and ``spk_id_encoded`` replaced; other attributes come from the batch.

    Example
    -------
    >>> view = BatchView(SimpleNamespace(id=["a"], sig=None), (torch.ones(2, 3), torch.ones(2)), torch.tensor([0, 0]))
    >>> view.id, view.sig[0].shape, view.spk_id_encoded.data.tolist()
    (['a'], torch.Size([2, 3]), [0, 0])
    """

    def __init__(self, batch, sig, labels):
        self._batch = batch
        self.sig = sig
        self.spk_id_encoded = SimpleNamespace(data=labels, lengths=None)

    def __getattr__(self, name):
        return getattr(self._batch, name)


def select_rows(outputs, rows):
    """A view of ``outputs`` (``compute_forward``'s namespace) restricted to ``rows``.

    Example
    -------
    >>> outputs = SimpleNamespace(embeddings=torch.arange(4.0)[:, None], logits=None, labels=torch.arange(4),
    ...                           lens=torch.ones(4), batch=None)
    >>> view = select_rows(outputs, torch.tensor([1, 3]))
    >>> view.labels.tolist(), view.logits
    ([1, 3], None)
    """
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
