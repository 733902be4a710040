"""Guards of the private SpeechBrain and torch APIs used by ``speechbrain_ext.compat``.

Each test names the private API it guards; a failure after an upgrade of the pinned
``speechbrain==1.1.2`` / ``torch==2.14.1`` (setup.cfg) says which part of compat.py
to adapt.
"""

import copy
import inspect
import os
import pickle

import pytest
import speechbrain as sb
import speechbrain.core
import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import AddNoise
from speechbrain.dataio.dataloader import SaveableDataLoader
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.lobes.models import ECAPA_TDNN as ecapa_tdnn
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.nnet.CNN import Conv1d
from speechbrain.utils import checkpoints as sb_checkpoints

from data_prep.noise import white_noise_list
from speechbrain_ext import compat


def _parameters(function):
    return list(inspect.signature(function).parameters)


# ------------------------------------------------------------------ Brain._train_loader_specifics
class _Probe(compat.Brain):
    partitioned = None

    def rank_partitioned_sampler(self, loader_kwargs):
        return self.partitioned


def _probe_brain():
    return _Probe(modules={"m": torch.nn.Linear(1, 1)}, run_opts={"device": "cpu"})


def _dataset():
    return DynamicItemDataset({str(i): {"x": i} for i in range(4)}, output_keys=["id"])


def test_brain_train_loader_specifics_is_called_by_make_dataloader_with_dataset_and_kwargs():
    assert _parameters(sb.core.Brain._train_loader_specifics) == ["self", "dataset", "loader_kwargs"], (
        "speechbrain.core.Brain._train_loader_specifics changed its signature: adapt compat.Brain"
    )
    assert "self._train_loader_specifics(dataset, loader_kwargs)" in inspect.getsource(sb.core.Brain.make_dataloader)


def test_brain_hook_bypasses_speechbrain_sampler_handling():
    brain = _probe_brain()
    sampler = torch.utils.data.BatchSampler(range(4), batch_size=2, drop_last=False)
    brain.partitioned = sampler
    loader = brain.make_dataloader(_dataset(), sb.Stage.TRAIN, batch_sampler=sampler)
    assert brain.train_sampler is sampler and loader.batch_sampler is sampler
    # Without the hook, SpeechBrain's own handling runs: shuffle=True becomes its reproducible sampler.
    brain = _probe_brain()
    brain.make_dataloader(_dataset(), sb.Stage.TRAIN, batch_size=2, shuffle=True)
    assert type(brain.train_sampler).__name__ == "ReproducibleRandomSampler"


# ------------------------------------------------------------------ Checkpointer internals
CHECKPOINTER_INTERNALS = {
    "_new_checkpoint_dirpath": ["self"],
    "_custom_checkpoint_dirpath": ["self", "name"],
    "_save_checkpoint_metafile": ["self", "fpath", "meta_to_include", "end_of_epoch"],
    "_list_checkpoint_dirs": ["self"],
    "_construct_checkpoint_objects": ["checkpoint_dirs"],
    "_call_load_hooks": ["self", "checkpoint"],
}


@pytest.mark.parametrize("name", list(CHECKPOINTER_INTERNALS))
def test_checkpointer_private_methods_keep_their_signature(name):
    method = getattr(sb_checkpoints.Checkpointer, name, None)
    assert method is not None, f"speechbrain Checkpointer.{name} is gone: adapt compat.Checkpointer"
    assert _parameters(method) == CHECKPOINTER_INTERNALS[name], f"Checkpointer.{name} changed its signature"


def test_checkpointer_public_names_write_and_list_like_speechbrain(tmp_path):
    ckpt = compat.Checkpointer(tmp_path)
    folder = ckpt.checkpoint_dirpath()
    assert folder.parent == tmp_path and folder.name.startswith("CKPT+") and not folder.exists()
    assert ckpt.checkpoint_dirpath("x").name == "CKPT+x"
    folder.mkdir()
    meta = ckpt.write_meta_file(folder / sb_checkpoints.METAFNAME, {"EER": 1.5}, end_of_epoch=False)
    assert meta["EER"] == 1.5 and meta["end-of-epoch"] is False
    assert ckpt.checkpoint_dirs() == [folder]
    read = ckpt.read_checkpoint(folder)
    assert read.path == folder and read.meta["EER"] == 1.5


def test_call_load_hooks_is_where_recovery_loads_torch_states(tmp_path):
    """recover_if_possible goes through _call_load_hooks; the hook replaces torch_recovery there only."""
    model = torch.nn.Linear(2, 2)
    sb_checkpoints.Checkpointer(tmp_path, {"model": model}).save_checkpoint()
    calls = []

    class Recording(compat.Checkpointer):
        @staticmethod
        def torch_load_hook(obj, path, end_of_epoch):
            calls.append(os.path.basename(path))
            sb_checkpoints.torch_recovery(obj, path, end_of_epoch)

    ckpt = Recording(tmp_path, {"model": torch.nn.Linear(2, 2)})
    assert ckpt.recover_if_possible() is not None
    assert calls == ["model.ckpt"] and ckpt.custom_load_hooks == {}
    assert sb_checkpoints.get_default_hook(model, sb_checkpoints.DEFAULT_LOAD_HOOKS) is sb_checkpoints.torch_recovery


# ------------------------------------------------------------------ speechbrain.core.SyncBatchNorm
def test_speechbrain_core_converts_batchnorm_through_its_syncbatchnorm_name():
    assert hasattr(speechbrain.core, "SyncBatchNorm"), "speechbrain.core no longer imports SyncBatchNorm"
    source = inspect.getsource(sb.core.Brain._wrap_distributed)
    assert "SyncBatchNorm.convert_sync_batchnorm(module)" in source, (
        "Brain._wrap_distributed no longer converts with the module-level SyncBatchNorm: adapt "
        "compat.replace_sync_batchnorm"
    )


def test_replace_sync_batchnorm_is_what_brain_reads():
    original = speechbrain.core.SyncBatchNorm

    class Policy:
        @staticmethod
        def convert_sync_batchnorm(module, process_group=None):
            return module

    try:
        compat.replace_sync_batchnorm(Policy)
        assert speechbrain.core.SyncBatchNorm is Policy
    finally:
        compat.replace_sync_batchnorm(original)


# ------------------------------------------------------------------ DataLoader iterator position
@pytest.mark.parametrize("workers", [0, 1])
def test_dataloader_iterators_count_yielded_batches(workers):
    loader = torch.utils.data.DataLoader(list(range(6)), batch_size=2, num_workers=workers)
    iterator = iter(loader)
    holder = type("Part", (), {})()
    holder.noise_data, holder.other = iterator, [1]
    assert compat.loader_iterators(holder) == {"noise_data": iterator}, "_BaseDataLoaderIter is gone"
    next(iterator), next(iterator)
    assert compat.batches_yielded(iterator) == 2, "DataLoader iterators no longer count _num_yielded"


def test_saveable_dataloader_skips_to_the_recovery_position():
    loader = SaveableDataLoader(list(range(6)), batch_size=2)
    assert loader._speechbrain_recovery_skip_to is None, "SaveableDataLoader lost _speechbrain_recovery_skip_to"
    iterator = compat.fast_forward(loader, 2)
    assert next(iterator).tolist() == [4, 5] and compat.batches_yielded(iterator) == 3
    assert loader._speechbrain_recovery_skip_to is None  # consumed by the new iterator
    assert next(compat.fast_forward(torch.utils.data.DataLoader(list(range(6)), batch_size=2), 1)).tolist() == [2, 3]


# ------------------------------------------------------------------ Conv1d._manage_padding
def _ecapa(seed=0):
    torch.manual_seed(seed)
    return ECAPA_TDNN(20, channels=[16, 16, 16, 16, 48], kernel_sizes=[5, 3, 3, 3, 1], dilations=[1, 2, 3, 4, 1],
                      lin_neurons=8, attention_channels=8)


def test_conv1d_pads_same_convolutions_in_manage_padding_with_its_padding_mode():
    assert _parameters(Conv1d._manage_padding) == ["self", "x", "kernel_size", "dilation", "stride"], (
        "speechbrain.nnet.CNN.Conv1d._manage_padding changed its signature: adapt compat._SlicedReflectPadding"
    )
    assert "self._manage_padding(" in inspect.getsource(Conv1d.forward)
    assert "mode=self.padding_mode" in inspect.getsource(Conv1d._manage_padding)
    assert issubclass(ecapa_tdnn.Conv1d, Conv1d)


@pytest.mark.parametrize("frames", [9, 10, 40, 101])
def test_sliced_padding_gives_speechbrains_outputs_and_gradients_to_the_bit(frames):
    reference, sliced = _ecapa(), _ecapa()
    assert compat.use_sliced_reflect_padding(sliced) == 38
    x = torch.randn(3, frames, 20)
    lens = torch.tensor([1.0, 0.8, 0.5])
    outputs = []
    for model in (reference, sliced):
        y = model(x, lens)
        y.pow(2).sum().backward()
        outputs.append(y)
    assert torch.equal(outputs[0], outputs[1])
    for (name, a), (_, b) in zip(reference.named_parameters(), sliced.named_parameters()):
        assert torch.equal(a.grad, b.grad), name


@pytest.mark.parametrize("kernel, dilation", [(1, 1), (3, 1), (3, 4), (5, 1), (5, 3)])
def test_sliced_padding_is_reflect_padding_of_every_width(kernel, dilation):
    conv = Conv1d(out_channels=2, kernel_size=kernel, dilation=dilation, in_channels=3, skip_transpose=True)
    x = torch.randn(2, 3, 17)
    expected = conv(x)
    compat.use_sliced_reflect_padding(conv)
    assert type(conv) is compat.SlicedReflectConv1d and torch.equal(conv(x), expected)


def test_a_pad_as_wide_as_the_input_still_fails_as_speechbrain_does():
    conv = Conv1d(out_channels=2, kernel_size=5, in_channels=3, skip_transpose=True)
    x = torch.randn(1, 3, 2)
    with pytest.raises(RuntimeError) as speechbrain_error:
        conv(x)
    compat.use_sliced_reflect_padding(conv)
    with pytest.raises(RuntimeError) as sliced_error:
        conv(x)
    assert str(sliced_error.value) == str(speechbrain_error.value)


def test_only_same_reflect_convolutions_change():
    layers = torch.nn.ModuleList([
        Conv1d(2, 3, in_channels=2, padding="valid"),
        Conv1d(2, 3, in_channels=2, padding="causal"),
        Conv1d(2, 3, in_channels=2, padding_mode="circular"),
        torch.nn.Conv1d(2, 2, 3),
    ])
    before = [type(layer) for layer in layers]
    assert compat.use_sliced_reflect_padding(layers) == 0
    assert [type(layer) for layer in layers] == before


def test_sliced_layers_keep_their_state_and_survive_copy_and_pickle():
    model = _ecapa()
    keys = list(model.state_dict())
    compat.use_sliced_reflect_padding(model)
    assert list(model.state_dict()) == keys
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert type(other.blocks[0].conv) is compat.SlicedReflectECAPAConv1d
    assert compat.use_sliced_reflect_padding(model) == 0  # already sliced


def test_brain_gives_its_modules_the_sliced_padding():
    brain = compat.Brain(modules={"encoder": _ecapa()}, run_opts={"device": "cpu"})
    convs = [m for m in brain.modules.modules() if isinstance(m, Conv1d)]
    assert convs and all(type(m) is compat.SlicedReflectECAPAConv1d for m in convs)


# ------------------------------------------------------------------ AddNoise._load_noise
def _noise_csv(folder):
    return white_noise_list(folder, [0.3, 0.7, 1.3, 2.1, 0.5])  # shorter and longer than the 1 s clean batches


def test_add_noise_loads_its_noise_in_load_noise_from_its_loader_batches():
    assert _parameters(AddNoise._load_noise) == ["self", "lengths", "max_length"], (
        "AddNoise._load_noise changed its signature: adapt compat.WindowedAddNoise"
    )
    source = inspect.getsource(AddNoise._load_noise)
    for step in ("self._load_noise_batch_of_size(batch_size)", "noise_len = (noise_len * noise_batch.shape[1]).long()",
                 "torch.randint(", "noise_batch[:, start_index : start_index + max_length]"):
        assert step in source, f"AddNoise._load_noise no longer does {step!r}: adapt compat.WindowedAddNoise"
    assert "self._load_noise_batch()" in inspect.getsource(AddNoise._load_noise_batch_of_size)
    assert "added_lens * added_tensor_len / noise_tensor_len" in inspect.getsource(AddNoise._concat_batch)


@pytest.mark.parametrize("memory_bytes", [compat.WindowedAddNoise.memory_bytes, 0])
@pytest.mark.parametrize("batch_sizes", [(3, 3, 8, 2, 13, 5, 1, 9), (8, 3, 1, 13), (1, 7, 7, 2)])
def test_windowed_noise_is_speechbrains_noise_to_the_bit(tmp_path, batch_sizes, memory_bytes):
    csv = _noise_csv(str(tmp_path))
    reference, windowed = (AddNoise(csv, snr_low=0, snr_high=15) for _ in range(2))
    assert compat.use_windowed_noise(windowed) == 1 and type(windowed) is compat.WindowedAddNoise
    windowed.memory_bytes = memory_bytes
    failed = 0
    for call, size in enumerate(batch_sizes * 3):  # the loader restarts: 5 noises, batches of the first size
        clean = torch.randn(size, 16000)
        lens = torch.rand(size) * 0.8 + 0.2
        outputs = []
        for augment in (reference, windowed):
            torch.manual_seed(call)
            try:
                outputs.append(augment(clean, lens))
            except RuntimeError as err:  # SpeechBrain's window can overrun a short noise: the same error then
                outputs.append(str(err))
            outputs.append(torch.rand(1))  # both consumed the same random draws
        if isinstance(outputs[0], str):
            failed += 1
            assert outputs[0] == outputs[2]
        else:
            assert torch.equal(outputs[0], outputs[2]) and not torch.equal(outputs[0], clean), (call, size)
        assert torch.equal(outputs[1], outputs[3])
    assert failed < len(batch_sizes)
    # 4.9 s of noise: read once and kept, unless the limit says no
    assert isinstance(windowed.data_loader.dataset, list) == (memory_bytes > 0)
    assert not isinstance(reference.data_loader.dataset, list)


def test_windowed_noise_keeps_speechbrains_path_where_it_differs(tmp_path):
    csv = _noise_csv(str(tmp_path))
    generated, padded = AddNoise(), AddNoise(csv, pad_noise=True)
    assert compat.use_windowed_noise(torch.nn.ModuleList([generated])) == 0  # no noise files: nothing to window
    compat.use_windowed_noise(padded)
    torch.manual_seed(0)
    reference = AddNoise(csv, pad_noise=True)(torch.randn(4, 16000), torch.ones(4))
    torch.manual_seed(0)
    assert torch.equal(padded(torch.randn(4, 16000), torch.ones(4)), reference)


def test_brain_gives_the_noise_of_its_wav_augmentation_the_windowed_loading(tmp_path):
    noise = AddNoise(_noise_csv(str(tmp_path)))
    brain = compat.Brain(modules={"encoder": _ecapa()}, hparams={"wav_augment": Augmenter(augmentations=[noise])},
                         run_opts={"device": "cpu"})
    assert type(brain.hparams.wav_augment.augmentations["AddNoise0"]) is compat.WindowedAddNoise
