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
``AddNoise._load_noise``,                   :func:`use_windowed_noise`: the same noise window, without
``_load_noise_batch``, ``data_loader``      padding whole noise files to one width first, from noise
                                            read once when it fits in memory
==========================================  ===========================================================
"""

import speechbrain as sb
import speechbrain.core
import torch
from speechbrain.augment.time_domain import AddNoise
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
    "module_parts",
    "replace_sync_batchnorm",
    "use_sliced_reflect_padding",
    "use_windowed_noise",
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

    def __init__(self, modules=None, opt_class=None, hparams=None, run_opts=None, checkpointer=None):
        super().__init__(modules, opt_class, hparams, run_opts, checkpointer)
        # Faster paths with the same numbers, for the modules and for what hparams hold (wav_augment)
        held = [value for value in (hparams or {}).values() if isinstance(value, torch.nn.Module)]
        for module in [self.modules, *held]:
            use_sliced_reflect_padding(module)
            use_windowed_noise(module)

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
    (C=64, one CPU thread) takes about 0.83x the CPU time (``bench/bench_fast_paths.py``).
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


class WindowedAddNoise(AddNoise):
    """SpeechBrain's ``AddNoise`` that cuts each noise's window without padding whole files first.

    For every batch SpeechBrain concatenates the noise loader's batches padded to the longest
    noise file, then keeps a window of the clean batch's length: seconds of noise padded and
    copied to use one. This class reads the same loader batches, computes the relative lengths
    with the same arithmetic, draws the same window start and copies only the window: the same
    noise, to the bit (``tests/unit/test_compat.py``), and the same random draws, so a resumed
    run's noise is unchanged. Cases SpeechBrain handles otherwise (``pad_noise``, a fixed
    ``start_index``, resampled noise, the first call that builds the loader) are left to it.

    SpeechBrain also reads every noise file again for every batch. When the decoded noise
    (the durations of the noise list) fits in :attr:`memory_bytes`, the files are read once
    and the loader is rebuilt over them with the same sampler and collation: the same
    batches in the same order. A larger noise list (e.g. MUSAN) is read as SpeechBrain reads it.
    SynthEmo's noise added to a recipe batch takes about 0.2x the CPU time
    (``bench/bench_fast_paths.py``). Made by :func:`use_windowed_noise`, never built directly.
    """

    #: The most decoded noise (float32 bytes) kept in memory; set to 0 to always read the files.
    memory_bytes = 256 * 2 ** 20
    _memory_decided = False

    def _load_noise(self, lengths, max_length):
        if self.pad_noise or self.start_index is not None or self.noise_sample_rate != self.clean_sample_rate \
                or not hasattr(self, "data_loader"):
            return super()._load_noise(lengths, max_length)
        if not self._memory_decided:
            self._keep_noise_in_memory()
        lengths = lengths.long().squeeze(1)
        batch_size = len(lengths)
        parts, noise_lens, width = [], None, 0
        while sum(len(part) for part in parts) < batch_size:
            added, added_lens = self._load_noise_batch()
            if noise_lens is None:
                noise_lens, width = added_lens, added.shape[1]
            else:  # AddNoise._concat_batch's arithmetic, without the padding
                if width > added.shape[1]:
                    added_lens = added_lens * added.shape[1] / width
                else:
                    noise_lens = noise_lens * width / added.shape[1]
                    width = added.shape[1]
                noise_lens = torch.cat((noise_lens, added_lens))
            parts.append(added)
        noise_len = (noise_lens[:batch_size].to(lengths.device) * width).long()
        width = max(width, max_length)  # SpeechBrain pads a batch of short noises to max_length
        max_chop = (noise_len - lengths).min().clamp(min=1)
        start = torch.randint(high=max_chop, size=(1,), device=lengths.device)
        first = int(start)
        window = torch.zeros(batch_size, min(max_length, width - first), *parts[0].shape[2:], dtype=parts[0].dtype,
                             device=lengths.device)
        row = 0
        for part in parts:
            piece = part[: batch_size - row, first:first + window.shape[1]]
            window[row:row + len(piece), : piece.shape[1]] = piece
            row += len(piece)
        return window, (noise_len - start).clamp(max=max_length).unsqueeze(1)

    def _keep_noise_in_memory(self):
        self._memory_decided = True
        loader, dataset = self.data_loader, self.data_loader.dataset
        seconds = sum(float(item.get("duration", "inf")) for item in dataset.data.values())
        if seconds * self.clean_sample_rate * 4 > self.memory_bytes:
            return
        # The iterator already running keeps reading files until its epoch ends; the next one reads memory.
        self.data_loader = SaveableDataLoader([dataset[i] for i in range(len(dataset))], batch_size=loader.batch_size,
                                              sampler=loader.sampler, collate_fn=loader.collate_fn)


def module_parts(obj):
    """Every object inside ``obj``, depth first, in a fixed order, the parts of an ``Augmenter`` included.

    SpeechBrain's ``Augmenter`` keeps its augmentations in a dict, not as submodules, so
    ``Module.modules()`` does not reach them.

    Example
    -------
    >>> from speechbrain.augment.augmenter import Augmenter
    >>> noise = AddNoise("noise.csv")
    >>> augment = Augmenter(augmentations=[noise])
    >>> noise in list(augment.modules()), noise in module_parts(augment)
    (False, True)
    """
    seen, out = set(), []

    def visit(part):
        if part is None or id(part) in seen:
            return
        seen.add(id(part))
        out.append(part)
        children = list(part.children()) if isinstance(part, torch.nn.Module) else []
        inner = getattr(part, "augmentations", None)
        if isinstance(inner, dict):
            children.extend(inner.values())
        elif isinstance(inner, list | tuple):
            children.extend(inner)
        for child in children:
            visit(child)

    visit(obj)
    return out


def use_windowed_noise(module):
    """Make every SpeechBrain ``AddNoise`` with a noise file list in ``module`` a :class:`WindowedAddNoise`.

    Returns how many changed (an ``AddNoise`` of generated noise, ``csv_file=None``, keeps its class).

    Example
    -------
    >>> from speechbrain.augment.augmenter import Augmenter
    >>> augment = Augmenter(augmentations=[AddNoise("noise.csv"), AddNoise()])
    >>> use_windowed_noise(augment), [type(a).__name__ for a in augment.augmentations.values()]
    (1, ['WindowedAddNoise', 'AddNoise'])
    """
    changed = 0
    for layer in module_parts(module):
        if type(layer) is AddNoise and layer.csv_file is not None:
            layer.__class__ = WindowedAddNoise
            changed += 1
    return changed
