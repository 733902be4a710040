"""Continuing a trained run (speechbrain_ext.pretrained.init_from_run): what is loaded, and bad sources."""

import os
import shutil

import pytest
import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
from speechbrain.processing.features import InputNormalization

from speechbrain_ext.pretrained import PretrainedError, find_run_checkpoint, init_from_run

SPEAKERS = ["s01", "s02", "s03", "s04"]


def make_modules(channels=16, emb_dim=8, n_speakers=4, seed=0):
    torch.manual_seed(seed)
    return {
        "embedding_model": ECAPA_TDNN(input_size=20, channels=[channels] * 4 + [3 * channels], lin_neurons=emb_dim,
                                      attention_channels=8),
        "classifier": Classifier(input_size=emb_dim, out_neurons=n_speakers),
        "mean_var_norm": InputNormalization(norm_type="global"),
    }


def write_manifest(path, speakers):
    rows = [f"{spk}_{k},1.0,$data_root/{spk}_{k}.wav,{spk}" for spk in speakers for k in range(2)]
    with open(path, "w") as f:
        f.write("ID,duration,wav,spk_id\n" + "\n".join(rows) + "\n")
    return str(path)


def save_checkpoint(save, name, modules, meta):
    ckpt = os.path.join(save, name)
    os.makedirs(ckpt)
    with open(os.path.join(ckpt, "CKPT.yaml"), "w") as f:
        f.write(meta + "\n")
    torch.save(modules["embedding_model"].state_dict(), os.path.join(ckpt, "embedding_model.ckpt"))
    torch.save(modules["classifier"].state_dict(), os.path.join(ckpt, "classifier.ckpt"))
    modules["mean_var_norm"]._save(os.path.join(ckpt, "normalizer.ckpt"))
    return ckpt


@pytest.fixture
def source(tmp_path):
    """A trained run's folder: two end-of-epoch checkpoints (EER 5 and 3 %), a newer mid-epoch one."""
    run = tmp_path / "results" / "ecapa_aam" / "seed1986"
    save = str(run / "save")
    os.makedirs(save)
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(SPEAKERS)
    encoder.save(os.path.join(save, "label_encoder.txt"))
    worse = make_modules(seed=1)
    best = make_modules(seed=2)
    best["mean_var_norm"](torch.randn(3, 5, 20), torch.ones(3))  # statistics to carry over
    save_checkpoint(save, "CKPT+2024-01-01+00-00-01+00", worse, "EER: 5.0\nepoch: 1\nunixtime: 1")
    best_ckpt = save_checkpoint(save, "CKPT+2024-01-01+00-00-02+00", best, "EER: 3.0\nepoch: 2\nunixtime: 2")
    save_checkpoint(save, "CKPT+2024-01-01+00-00-03+00", make_modules(seed=3),
                    "brain_intra_epoch_ckpt: true\nunixtime: 3")
    manifest = write_manifest(tmp_path / "train.csv", SPEAKERS)
    return {"run": str(run), "best": best, "best_ckpt": best_ckpt, "manifest": manifest, "tmp": tmp_path}


def test_loads_encoder_normaliser_and_classifier_of_the_best_checkpoint(source):
    modules = make_modules(seed=9)
    loaded = init_from_run(modules, source["run"], source["manifest"],
                           output_folder=str(source["tmp"] / "results" / "ecapa_aam_lm" / "seed1986"))
    assert sorted(loaded) == ["classifier", "embedding_model", "mean_var_norm"]
    assert all(os.path.dirname(f) == source["best_ckpt"] for f in loaded.values())
    for part in ("embedding_model", "classifier"):
        for (k, a), b in zip(modules[part].state_dict().items(), source["best"][part].state_dict().values(),
                             strict=True):
            assert torch.equal(a, b), (part, k)
    assert torch.equal(modules["mean_var_norm"].glob_mean, source["best"]["mean_var_norm"].glob_mean)


def test_a_checkpoint_folder_can_be_named(source):
    worse = os.path.join(source["run"], "save", "CKPT+2024-01-01+00-00-01+00")
    assert find_run_checkpoint(worse)[0] == worse
    assert find_run_checkpoint(os.path.join(source["run"], "save"))[0] == source["best_ckpt"]


def test_another_architecture_names_the_tensor_and_both_shapes(source):
    with pytest.raises(PretrainedError, match=r"init_from: .*embedding_model.ckpt does not fit the embedding_model.*"
                                              r"blocks.0.conv.conv.weight: \(16, 20, 5\) in the file vs \(32, 20, 5\)"):
        init_from_run(make_modules(channels=32), source["run"], source["manifest"])
    with pytest.raises(PretrainedError, match=r"classifier.ckpt does not fit the classifier.*"
                                              r"weight: \(4, 8\) in the file vs \(5, 8\) here"):
        init_from_run(make_modules(n_speakers=5), source["run"], source["manifest"])


def test_nothing_is_loaded_when_a_part_does_not_fit(source):
    modules = make_modules(seed=9, n_speakers=4)
    modules["classifier"] = Classifier(input_size=8, out_neurons=4, lin_blocks=1, lin_neurons=8)
    before = {k: v.clone() for k, v in modules["embedding_model"].state_dict().items()}
    with pytest.raises(PretrainedError, match="classifier"):
        init_from_run(modules, source["run"], source["manifest"])
    assert all(torch.equal(v, before[k]) for k, v in modules["embedding_model"].state_dict().items())


def test_another_speaker_set_names_how_many_differ_and_the_first(source, tmp_path):
    other = write_manifest(tmp_path / "other.csv", ["s01", "s02", "s03", "s09", "s10"])
    with pytest.raises(PretrainedError, match=r"another speaker set: .*label_encoder.txt has 4 speakers, .*other.csv "
                                              r"has 5; 1 only in the source \(first 's04'\), 2 only in this run "
                                              r"\(first 's09'\)"):
        init_from_run(make_modules(), source["run"], other)


def test_the_same_speakers_in_another_order_are_refused(source, tmp_path):
    shuffled = write_manifest(tmp_path / "shuffled.csv", ["s02", "s01", "s03", "s04"])
    with pytest.raises(PretrainedError, match="the same 4 speakers in another order: 's01' is class 0 in .* but 1 in"):
        init_from_run(make_modules(), source["run"], shuffled)


def test_a_resumed_stage_compares_its_own_label_encoder(source, tmp_path):
    own = CategoricalEncoder()
    own.update_from_iterable(["s01", "s02", "s03", "s05"])
    own.save(str(tmp_path / "label_encoder.txt"))
    with pytest.raises(PretrainedError, match=r"1 only in the source \(first 's04'\).*first 's05'"):
        init_from_run(make_modules(), source["run"], source["manifest"], str(tmp_path / "label_encoder.txt"))


def test_missing_empty_and_untrained_sources(source, tmp_path):
    with pytest.raises(PretrainedError, match="init_from: folder not found: .*nowhere; give the output folder"):
        init_from_run(make_modules(), str(tmp_path / "nowhere"), source["manifest"])
    os.makedirs(tmp_path / "empty")
    with pytest.raises(PretrainedError, match="init_from: the source folder .*empty is empty"):
        init_from_run(make_modules(), str(tmp_path / "empty"), source["manifest"])
    untrained = tmp_path / "untrained"
    shutil.copytree(source["run"], untrained)
    for name in os.listdir(untrained / "save"):
        if "00-00-03" not in name and name.startswith("CKPT"):
            shutil.rmtree(untrained / "save" / name)
    with pytest.raises(PretrainedError, match="no checkpoint with a validation EER under .*untrained/save.*mid-epoch"):
        init_from_run(make_modules(), str(untrained), source["manifest"])


def test_missing_label_encoder_classifier_or_manifest(source, tmp_path):
    os.remove(os.path.join(source["run"], "save", "label_encoder.txt"))
    with pytest.raises(PretrainedError, match="the source run has no .*label_encoder.txt"):
        init_from_run(make_modules(), source["run"], source["manifest"])
    export = tmp_path / "export"
    os.makedirs(export)
    shutil.copy(os.path.join(source["best_ckpt"], "embedding_model.ckpt"), export)
    with pytest.raises(PretrainedError, match="no checkpoint with a validation EER"):
        init_from_run(make_modules(), str(export), source["manifest"])


def test_missing_manifest_and_missing_classifier(source, tmp_path):
    with pytest.raises(PretrainedError, match="training manifest .*absent.csv does not exist"):
        init_from_run(make_modules(), source["run"], str(tmp_path / "absent.csv"))
    os.remove(os.path.join(source["best_ckpt"], "classifier.ckpt"))
    with pytest.raises(PretrainedError, match=r"checkpoint .*00-00-02\+00 has no classifier.ckpt"):
        init_from_run(make_modules(), source["run"], source["manifest"])


def test_a_truncated_checkpoint_file_is_a_clear_error(source):
    path = os.path.join(source["best_ckpt"], "classifier.ckpt")
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(PretrainedError, match="classifier.ckpt cannot be read with torch.load"):
        init_from_run(make_modules(), source["run"], source["manifest"])


def test_the_source_run_and_this_run_may_not_overlap(source):
    with pytest.raises(PretrainedError, match="overlap; a fine-tuning run writes to its own folder"):
        init_from_run(make_modules(), source["run"], source["manifest"], output_folder=source["run"])
