"""Every private SpeechBrain and torch API the package relies on, in one place.

These names hold because ``setup.cfg`` pins ``speechbrain==1.1.2`` and
``torch==2.14.1`` (``install_requires``); nothing else in the package touches an
underscored name of either library. Each one is guarded by a test in
``tests/unit/test_compat.py`` that fails, naming the API, when an upgrade changes
its signature, its presence or the behaviour relied on. Moving the pin means
running those tests first and adapting this module only.

==========================================  ===========================================================
private API                                 used for
==========================================  ===========================================================
``Brain._train_loader_specifics``           :class:`Brain`: a rank-partitioned batch sampler is not
                                            wrapped in ``DistributedSamplerWrapper`` under DDP
``Checkpointer._call_load_hooks``           :class:`Checkpointer`: torch states loaded ``weights_only``
``Checkpointer._new_checkpoint_dirpath``,   :class:`Checkpointer`: the atomic save of
``_custom_checkpoint_dirpath``,             :class:`~speechbrain_ext.checkpoints.SafeCheckpointer`
``_save_checkpoint_metafile``,              names, writes and lists checkpoint folders as
``_list_checkpoint_dirs``,                  SpeechBrain does
``_construct_checkpoint_objects``
``speechbrain.core.SyncBatchNorm``          :func:`replace_sync_batchnorm`: the name ``Brain`` converts
                                            BatchNorm layers with under DDP
``_BaseDataLoaderIter._num_yielded``        :func:`loader_iterators`, :func:`batches_yielded`: where the
                                            noise loaders of a wav augmentation stand
``SaveableDataLoader._speechbrain_recovery  :func:`fast_forward`: a fresh iterator that skips what an
_skip_to``                                  earlier one had yielded
``speechbrain.nnet.CNN.Conv1d               :func:`use_sliced_reflect_padding`: the same ``reflect``
._manage_padding``                          padding of a ``same`` convolution, made from slices
==========================================  ===========================================================
"""

import speechbrain as sb
import speechbrain.core
import torch
from speechbrain.dataio.dataloader import SaveableDataLoader
from speechbrain.lobes.models import ECAPA_TDNN as ecapa_tdnn
from speechbrain.nnet.CNN import Conv1d, get_padding_elem
from speechbrain.utils import checkpoints as sb_checkpoints

__all__ = [
    "Brain",
    "Checkpointer",
    "batches_yielded",
    "fast_forward",
    "loader_iterators",
    "replace_sync_batchnorm",
    "use_sliced_reflect_padding",
]


class Brain(sb.core.Brain):
    """SpeechBrain's ``Brain`` with a public hook in place of its private ``_train_loader_specifics``.

    Under DDP SpeechBrain wraps any training ``batch_sampler`` in a
    ``DistributedSamplerWrapper``. A sampler that already gives each rank its own
    part of every batch is returned by :meth:`rank_partitioned_sampler`; it is then
    used as it is and registered as ``train_sampler`` (so that Brain calls its
    ``set_epoch``).

    Example
    -------
    >>> issubclass(Brain, sb.core.Brain), Brain.rank_partitioned_sampler(None, {"batch_sampler": [1]})
    (True, None)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        use_sliced_reflect_padding(self.modules)

    def _train_loader_specifics(self, dataset, loader_kwargs):
        sampler = self.rank_partitioned_sampler(loader_kwargs)
        if sampler is None:
            return super()._train_loader_specifics(dataset, loader_kwargs)
        self.train_sampler = sampler
        return loader_kwargs

    def rank_partitioned_sampler(self, loader_kwargs):
        """Hook: the ``batch_sampler`` of ``loader_kwargs`` when it partitions the data by rank itself, else None."""
        return None


class Checkpointer(sb_checkpoints.Checkpointer):
    """SpeechBrain's ``Checkpointer`` with the private methods a subclass needs, under public names.

    :attr:`torch_load_hook`, when set, replaces SpeechBrain's default loader of torch
    states (``torch_recovery``) during a recovery, for every recoverable without a
    custom load hook.

    Example
    -------
    >>> import os, tempfile
    >>> ckpt = Checkpointer(tempfile.mkdtemp())
    >>> os.path.basename(ckpt.checkpoint_dirpath("final")), ckpt.checkpoint_dirs()
    ('CKPT+final', [])
    """

    #: Load hook used in place of ``speechbrain.utils.checkpoints.torch_recovery`` (None: SpeechBrain's).
    torch_load_hook = None

    def checkpoint_dirpath(self, name=None):
        """The path of a new checkpoint folder (``CKPT+<time>`` or ``CKPT+<name>``), not created."""
        return self._new_checkpoint_dirpath() if name is None else self._custom_checkpoint_dirpath(name)

    def write_meta_file(self, path, meta, end_of_epoch):
        """Write ``CKPT.yaml`` at ``path``; returns the meta data written."""
        return self._save_checkpoint_metafile(path, meta, end_of_epoch)

    def checkpoint_dirs(self):
        """Every ``CKPT+*`` folder that holds a ``CKPT.yaml``."""
        return self._list_checkpoint_dirs()

    def read_checkpoint(self, ckpt_dir):
        """The ``Checkpoint`` (path, meta, paramfiles) of one folder."""
        return self._construct_checkpoint_objects([ckpt_dir])[0]

    def _call_load_hooks(self, checkpoint):
        added = []
        if self.torch_load_hook is not None:
            for name, obj in self.recoverables.items():
                default = sb_checkpoints.get_default_hook(obj, sb_checkpoints.DEFAULT_LOAD_HOOKS)
                if name not in self.custom_load_hooks and default is sb_checkpoints.torch_recovery:
                    self.custom_load_hooks[name] = self.torch_load_hook
                    added.append(name)
        try:
            super()._call_load_hooks(checkpoint)
        finally:
            for name in added:
                del self.custom_load_hooks[name]


def replace_sync_batchnorm(policy):
    """Make ``Brain``'s DDP wrapping convert BatchNorm layers with ``policy.convert_sync_batchnorm``.

    ``speechbrain.core`` imports ``torch.nn.SyncBatchNorm`` under that name and calls
    its ``convert_sync_batchnorm(module)`` for every module it wraps; the replacement
    is process-wide.

    Example
    -------
    >>> replace_sync_batchnorm(torch.nn.SyncBatchNorm)
    >>> speechbrain.core.SyncBatchNorm is torch.nn.SyncBatchNorm
    True
    """
    speechbrain.core.SyncBatchNorm = policy


def loader_iterators(obj):
    """The DataLoader iterators among the attributes of ``obj``, ``{attribute: iterator}``.

    Example
    -------
    >>> from types import SimpleNamespace
    >>> loader = torch.utils.data.DataLoader(range(4))
    >>> list(loader_iterators(SimpleNamespace(it=iter(loader), other=3)))
    ['it']
    """
    base = torch.utils.data.dataloader._BaseDataLoaderIter
    return {name: value for name, value in vars(obj).items() if isinstance(value, base)}


def batches_yielded(iterator):
    """How many batches a DataLoader iterator has yielded.

    Example
    -------
    >>> it = iter(torch.utils.data.DataLoader(range(4))); _ = next(it)
    >>> batches_yielded(it)
    1
    """
    return int(iterator._num_yielded)


def fast_forward(loader, count):
    """A new iterator of ``loader`` positioned after its first ``count`` batches.

    A ``SaveableDataLoader`` skips them in its sampler (nothing is loaded); another
    loader reads and drops them.

    Example
    -------
    >>> next(fast_forward(torch.utils.data.DataLoader(range(4)), 2)).tolist()
    [2]
    >>> next(fast_forward(SaveableDataLoader(range(4)), 3)).tolist()
    [3]
    """
    if isinstance(loader, SaveableDataLoader):
        loader._speechbrain_recovery_skip_to = count
        return iter(loader)
    iterator = iter(loader)
    for _ in range(count):
        next(iterator)
    return iterator



class _SlicedReflectPadding:
    """The ``same`` + ``reflect`` padding of SpeechBrain's ``Conv1d``, built from slices.

    SpeechBrain pads with ``F.pad(x, (left, right), mode="reflect")`` before every such
    convolution, a kernel-1 one included (a zero-width pad that still copies the
    tensor), and on CPU the backward of ``reflect`` padding is slow. The mirrored
    edges concatenated to ``x`` are the same values and give the same gradients,
    bit for bit (``tests/unit/test_compat.py``; an input so short that a frame is
    mirrored to both sides is padded by SpeechBrain, whose gradient sums three terms
    in its own order). A training step of SynthEmo's ECAPA-TDNN
    (C=64, one CPU thread) takes 0.83x the CPU time (``bench/bench_padding.py``).
    """

    def _manage_padding(self, x, kernel_size: int, dilation: int, stride: int):
        left, right = get_padding_elem(self.in_channels, stride, kernel_size, dilation)
        if left == 0 and right == 0:
            return x
        if left + right >= x.shape[-1] - 1:
            # A frame mirrored to both sides would get three gradient terms, summed in another
            # order than F.pad's; F.pad also raises its own error for a pad wider than the input.
            return super()._manage_padding(x, kernel_size, dilation, stride)
        return torch.cat([x[..., 1:left + 1].flip(-1), x, x[..., -right - 1:-1].flip(-1)], dim=-1)


class SlicedReflectConv1d(_SlicedReflectPadding, Conv1d):
    """``speechbrain.nnet.CNN.Conv1d`` with sliced padding (made by :func:`use_sliced_reflect_padding`)."""


class SlicedReflectECAPAConv1d(_SlicedReflectPadding, ecapa_tdnn.Conv1d):
    """ECAPA-TDNN's ``Conv1d`` with sliced padding (made by :func:`use_sliced_reflect_padding`)."""


_SLICED = {Conv1d: SlicedReflectConv1d, ecapa_tdnn.Conv1d: SlicedReflectECAPAConv1d}


def use_sliced_reflect_padding(module):
    """Give every ``same`` / ``reflect`` SpeechBrain ``Conv1d`` in ``module`` the sliced padding.

    The layers keep their parameters, state-dict keys and outputs (to the bit); only
    their class changes (to a subclass of the one they had), so a copy or a pickle of
    the module keeps the faster padding. :class:`Brain` applies it to its ``modules``.
    Returns how many layers changed.

    Example
    -------
    >>> enc = ecapa_tdnn.ECAPA_TDNN(20, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8).eval()
    >>> x = torch.randn(2, 50, 20)
    >>> before = enc(x)
    >>> use_sliced_reflect_padding(enc), torch.equal(enc(x), before)
    (38, True)
    """
    changed = 0
    for layer in module.modules():
        sliced = _SLICED.get(type(layer))
        if sliced is not None and layer.padding == "same" and layer.padding_mode == "reflect":
            layer.__class__ = sliced
            changed += 1
    return changed
