"""EmotionInvariantBrain (methods.md B), built in-process from the SynthEmo YAML rows with tiny overrides."""

import csv
import os
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch

from speechbrain_ext import data as sx_data
from speechbrain_ext.augment import EnergyEmotionMask
from speechbrain_ext.balancing import GroupedBalancer
from speechbrain_ext.brains import (
    ContrastiveSpeakerBrain,
    EmotionContrastiveBrain,
    EmotionInvariantBrain,
    SpeakerBrain,
)
from speechbrain_ext.hparams import load_hparams
from speechbrain_ext.losses import ParallelCosineLoss
from speechbrain_ext.parallel import ParallelLayout, join_halves
from speechbrain_ext.partners import UNREADABLE_PARTNER
from speechbrain_ext.resume import EpochStats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HPARAMS = os.path.join(ROOT, "recipes", "SynthEmo", "hparams")
PAPER_ROW = "ecapa_aam_copypaste_cos_em.yaml"
CROP = 0.5  # seconds; SynthEmo utterances are 2-4 s
TRAIN = sb.Stage.TRAIN


def make_brain(tmp_path, corpus, row=PAPER_ROW, run_opts=None, **overrides):
    """A Brain of a SynthEmo row on the tiny corpus (no wav augmentation unless overridden), on the CPU."""
    data_folder, manifests = corpus
    options = {
        "data_folder": data_folder,
        "output_root": str(tmp_path / "res"),
        "manifest_folder": manifests,
        "n_train_speakers": 8,
        "channels": 16,
        "crop_seconds": CROP,
        "speakers_per_batch": 2,
        "utterances_per_speaker": 2,
        "num_workers": 0,
        "wav_augment": None,
        **overrides,
    }
    hparams, _ = load_hparams(os.path.join(HPARAMS, row), options)
    return hparams["brain_class"](
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts={**(run_opts or {}), "device": "cpu"},
        checkpointer=hparams["checkpointer"],
    )


def first_batch(brain, n=4, epoch=1):
    """Build the datasets, start a training epoch and collate the first batch (P x K = ``n`` examples)."""
    train, _ = brain.make_datasets()
    brain.train_loader_options(train)  # as the runner does (sets the P x K batch sampler)
    brain.on_stage_start(TRAIN, epoch)
    indices = next(iter(brain.batch_sampler))
    assert len(indices) == n
    return train, sx_data.collate_skipping([train[i] for i in indices])


def write_manifest(path, rows, columns=("ID", "duration", "wav", "spk_id", "emotion")):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def read_rows(manifest):
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def corpus(tiny_synthemo):
    return tiny_synthemo


# ---------------------------------------------------------------------------- building blocks


def test_grouped_balancer_with_mgda_takes_the_two_groups():
    from speechbrain_ext.balancing import MGDABalancer

    z = torch.ones(2, 3, requires_grad=True)
    losses = {"aam": z.sum(), "aam_parallel": z.sum(), "parallel_cos": 0.0 * z.sum(), "contrastive": 4 * z.sum()}
    groups = {"cls": {"aam": 1.0, "aam_parallel": 1.0, "parallel_cos": 1.0}, "con": {"contrastive": 1.0}}
    total, stats = GroupedBalancer(MGDABalancer(), groups)(losses, z)
    assert stats["alpha"] == 1.0 and stats["group_cls"] == 12.0  # grads 2 vs 4: the smaller wins
    with pytest.raises(KeyError, match="unexpected"):
        GroupedBalancer(MGDABalancer(), groups)({**losses, "extra": z.sum()}, z)


# ---------------------------------------------------------------------------- the 2B batch


def test_batch_is_originals_then_parallels_with_labels_duplicated(tmp_path, corpus):
    brain = make_brain(tmp_path, corpus)
    _, batch = first_batch(brain)
    wavs, lens, labels = brain.prepare_waveforms(batch, TRAIN)
    n, crop = 4, int(CROP * 16000)
    assert wavs.shape == (2 * n, crop) and lens.tolist() == [1.0] * (2 * n)
    torch.testing.assert_close(wavs[:n], batch.sig.data)
    torch.testing.assert_close(wavs[n:], batch.parallel_sig.data)
    assert not torch.equal(wavs[:n], wavs[n:])
    assert torch.equal(labels, torch.cat([batch.spk_id_encoded.data] * 2))
    assert brain.partner_counts["other_emotion"] == n
    # Outside training the batch is the baseline's (no parallel half).
    valid_wavs, _, valid_labels = brain.prepare_waveforms(batch, sb.Stage.VALID)
    assert valid_wavs.shape[0] == n and valid_labels is None


def test_wav_augmentation_sees_the_whole_2b_batch(tmp_path, corpus):
    brain = make_brain(tmp_path, corpus, row="ecapa_aam_copypaste.yaml")
    brain.hparams.wav_augment = load_hparams(
        os.path.join(HPARAMS, "ecapa_aam.yaml"),
        {"n_train_speakers": 8, "manifest_folder": corpus[1], "data_folder": corpus[0]},
    )[0]["wav_augment"]
    brain.hparams.wav_augment.augment_prob = 1.0
    _, batch = first_batch(brain)
    wavs, _, labels = brain.prepare_waveforms(batch, TRAIN)
    assert wavs.shape[0] == 8 and labels.shape[0] == 8
    assert not torch.allclose(wavs[:4], batch.sig.data)  # noise or reverb was applied
    assert brain._layout.pairs[0].tolist() == [0, 1, 2, 3]


def test_parallel_sig_is_deterministic_per_epoch(tmp_path, corpus):
    brain = make_brain(tmp_path, corpus)
    train, _ = brain.make_datasets()
    brain.on_stage_start(TRAIN, 1)
    a = train[0]["parallel_sig"]
    assert torch.equal(a, train[0]["parallel_sig"])
    brain.on_stage_start(TRAIN, 2)
    assert not torch.equal(a, train[0]["parallel_sig"])
    brain.on_stage_start(TRAIN, 1)
    assert torch.equal(a, train[0]["parallel_sig"])


# ---------------------------------------------------------------------------- emotion-aware masking


@pytest.mark.parametrize("apply_to", ["parallel", "both"])
def test_emotion_mask_only_on_the_intended_rows_and_only_in_training(tmp_path, corpus, apply_to):
    brain = make_brain(tmp_path, corpus, em_apply_to=apply_to)
    _, batch = first_batch(brain)
    wavs, lens, _ = brain.prepare_waveforms(batch, TRAIN)
    plain = SpeakerBrain.compute_features(brain, wavs, lens, TRAIN)
    masked = brain.compute_features(wavs, lens, TRAIN)
    changed = (masked != plain).any(dim=2)  # [2B, T]
    per_row = changed.any(dim=1).tolist()
    assert per_row == ([False] * 4 if apply_to == "parallel" else [True] * 4) + [True] * 4
    # About rho = 0.2 of the frames of each masked row (fewer where a masked frame equals the fill).
    share = changed[4:].float().mean(dim=1)
    assert ((share > 0.15) & (share <= 0.2 + 1e-6)).all()
    expected = EnergyEmotionMask(mask_ratio=0.2)(plain[4:], wavs[4:], lens[4:])[0]
    torch.testing.assert_close(masked[4:], expected)
    assert 0.19 < brain.epoch_stats.summary()["em_masked_share"] < 0.21
    for stage in (sb.Stage.VALID, sb.Stage.TEST):
        torch.testing.assert_close(brain.compute_features(wavs, lens, stage), plain)


def test_mask_on_parallel_inputs_without_copypaste_is_a_config_error(tmp_path, corpus):
    brain = make_brain(tmp_path, corpus, copypaste=None, em_apply_to="parallel")
    with pytest.raises(ValueError, match="copypaste is null"):
        brain.make_datasets()


# ---------------------------------------------------------------------------- losses


def test_losses_of_a_toy_batch_by_hand(tmp_path, corpus):
    brain = make_brain(tmp_path, corpus, parallel_cos_weight=0.5)
    torch.manual_seed(0)
    emb = torch.randn(6, 1, 5, requires_grad=True)
    logits = torch.tanh(torch.randn(6, 1, 8))
    labels = torch.tensor([[1], [2], [3], [1], [2], [3]])
    outputs = SimpleNamespace(
        embeddings=emb, logits=logits, labels=labels, lens=torch.ones(6), batch=None,
        parallel=ParallelLayout.plain(3),
    )
    losses = brain.compute_losses(outputs)
    aam = brain.hparams.aam_loss
    assert list(losses) == ["aam", "aam_parallel", "parallel_cos"]
    torch.testing.assert_close(losses["aam"], aam(logits[:3], labels[:3]))
    torch.testing.assert_close(losses["aam_parallel"], aam(logits[3:], labels[3:]))
    torch.testing.assert_close(losses["parallel_cos"], ParallelCosineLoss()(emb[:3], emb[3:]))
    cos = torch.nn.functional.cosine_similarity(emb[:3, 0], emb[3:, 0], dim=1)
    torch.testing.assert_close(losses["parallel_cos"], (1 - cos).mean())
    brain.epoch_stats = EpochStats()
    total = brain.compute_objectives(outputs, None, TRAIN)
    torch.testing.assert_close(total, losses["aam"] + losses["aam_parallel"] + 0.5 * losses["parallel_cos"])
    summary = brain.epoch_stats.summary()
    assert {"aam", "aam_parallel", "parallel_cos", "w_parallel_cos"} <= set(summary)


def test_without_copypaste_the_brain_is_the_baseline(tmp_path, corpus):
    brain = make_brain(tmp_path, corpus, row="emotion_base.yaml")
    assert brain.train_output_keys() == SpeakerBrain.train_output_keys(brain)
    _, batch = first_batch(brain)
    wavs, lens, labels = brain.prepare_waveforms(batch, TRAIN)
    torch.testing.assert_close(wavs, batch.sig.data)
    outputs = brain.compute_forward(batch, TRAIN)
    assert outputs.parallel is None and outputs.embeddings.shape[0] == 4
    assert list(brain.compute_losses(outputs)) == ["aam"]
    assert brain.extra_train_stats() == {}


# ---------------------------------------------------------------------------- partners, fallbacks, odd data


def _odd_corpus(tmp_path, corpus, with_emotion=True):
    """A training manifest with awkward speakers, built from tiny-corpus files.

    A: two emotions (normal); B: one emotion, two utterances; C: one utterance, shorter than
    the crop; D: two emotions, but its partner file is missing.
    """
    rows = read_rows(os.path.join(corpus[1], "train.csv"))
    by_spk = {}
    for row in rows:
        by_spk.setdefault(row["spk_id"], []).append(row)
    spk = sorted(by_spk)
    pick = {s: sorted(by_spk[s], key=lambda r: r["ID"]) for s in spk}
    short_wav = tmp_path / "short.wav"
    audio, rate = sf.read(pick[spk[2]][0]["wav"].replace("$data_root", corpus[0]), dtype="float32")
    sf.write(short_wav, audio[: int(0.2 * rate)], rate)

    def row(utt, speaker, emotion, wav):
        return {"ID": utt, "duration": "1.0", "wav": wav, "spk_id": speaker, "emotion": emotion}

    a0, a1 = pick[spk[0]][0], next(r for r in pick[spk[0]] if r["emotion"] != pick[spk[0]][0]["emotion"])
    b0, b1 = [r for r in pick[spk[1]] if r["emotion"] == "neutral"][:2]
    d0 = pick[spk[3]][0]
    out = [
        row("A0", "A", a0["emotion"], a0["wav"]),
        row("A1", "A", a1["emotion"], a1["wav"]),
        row("B0", "B", "neutral", b0["wav"]),
        row("B1", "B", "neutral", b1["wav"]),
        row("C0", "C", "sad", str(short_wav)),
        row("D0", "D", "neutral", d0["wav"]),
        row("D1", "D", "happy", str(tmp_path / "missing.wav")),
    ]
    columns = ("ID", "duration", "wav", "spk_id", "emotion") if with_emotion else ("ID", "duration", "wav", "spk_id")
    return write_manifest(tmp_path / "odd.csv", out, columns)


def test_fallbacks_are_counted_in_the_main_process_through_dataloader_workers(tmp_path, corpus):
    manifest = _odd_corpus(tmp_path, corpus)
    brain = make_brain(
        tmp_path, corpus, train_annotation=manifest, n_train_speakers=4, num_workers=1, train_sampler=None
    )
    train, _ = brain.make_datasets()
    options = brain.train_loader_options(train)
    options.update(batch_size=7, shuffle=False, drop_last=False)
    loader = brain.make_dataloader(train, stage=TRAIN, ckpt_prefix=None, **options)
    brain.on_stage_start(TRAIN, 1)
    (batch,) = list(loader)
    assert batch.batchsize == 6 and "D1" not in batch.id  # the unreadable original is skipped
    brain.prepare_waveforms(batch, TRAIN)
    assert dict(brain.partner_counts) == {
        "other_emotion": 2,  # A0, A1
        "same_emotion_fallback": 2,  # B0, B1
        "self_fallback": 1,  # C0: its speaker has one utterance
        UNREADABLE_PARTNER: 1,  # D0: its partner D1 cannot be read, x itself is used
    }
    stats = brain.extra_train_stats()
    assert stats["partners_self_fallback"] == 1 and stats[f"partners_{UNREADABLE_PARTNER}"] == 1
    assert stats["partner_fallback_share"] == pytest.approx(4 / 6)
    # C0 (0.2 s) is shorter than the 0.5 s crop: its parallel sample has its length.
    c = batch.id.index("C0")
    n_short = int(0.2 * 16000)
    assert round(float(batch.sig.lengths[c]) * batch.sig.data.shape[1]) == n_short
    assert round(float(batch.parallel_sig.lengths[c]) * batch.parallel_sig.data.shape[1]) == n_short
    wavs, lens = join_halves(batch.sig, batch.parallel_sig)
    assert round(float(lens[6 + c]) * wavs.shape[1]) == n_short
    assert bool((wavs[6 + c, n_short:] == 0).all())


def test_manifest_without_emotion_column_is_named_or_falls_back(tmp_path, corpus):
    manifest = _odd_corpus(tmp_path, corpus, with_emotion=False)
    brain = make_brain(tmp_path, corpus, train_annotation=manifest, n_train_speakers=4)
    with pytest.raises(ValueError, match="'emotion' column.*odd.csv.*require_emotion"):
        brain.make_datasets()
    brain = make_brain(tmp_path, corpus, train_annotation=manifest, n_train_speakers=4, require_emotion=False)
    train, _ = brain.make_datasets()
    brain.on_stage_start(TRAIN, 1)
    assert train[0]["partner_kind"] == "speaker_only_fallback"
    assert brain.partners.kind_totals["speaker_only_fallback"] == 6


def test_one_training_step_updates_the_model(tmp_path, corpus):
    brain = make_brain(tmp_path, corpus)
    _, batch = first_batch(brain)
    brain.on_fit_start()
    before = [p.detach().clone() for p in brain.modules.embedding_model.parameters()]
    loss = brain.fit_batch(batch)
    assert np.isfinite(float(loss))
    after = list(brain.modules.embedding_model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    assert isinstance(brain, EmotionInvariantBrain)


def test_a_step_skipped_for_another_rank_is_counted_not_trained(tmp_path, corpus, monkeypatch):
    from speechbrain_ext import distributed as sx_distributed

    brain = make_brain(tmp_path, corpus)
    _, batch = first_batch(brain)
    brain.on_fit_start()
    monkeypatch.setattr(sx_distributed, "any_rank", lambda flag, device="cpu": True)  # another rank: all unreadable
    before = [p.detach().clone() for p in brain.modules.embedding_model.parameters()]
    assert float(brain.fit_batch(batch)) == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, brain.modules.embedding_model.parameters()))
    assert brain.extra_train_stats()["steps_skipped_for_other_ranks"] == 1


# ---------------------------------------------------------------------------- with the contrastive Brain

COMBINED_ROW = "ecapa_aam_amsupcon_caa_mgda_copypaste_cos_em.yaml"


def test_combined_brain_gives_the_contrastive_term_the_original_half(tmp_path, corpus):
    brain = make_brain(tmp_path, corpus, row=COMBINED_ROW)
    assert isinstance(brain, EmotionContrastiveBrain) and isinstance(brain, ContrastiveSpeakerBrain)
    torch.manual_seed(0)
    emb = torch.randn(8, 1, 5, requires_grad=True)
    logits = torch.tanh(torch.randn(8, 1, 8))
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1]).reshape(8, 1)
    outputs = SimpleNamespace(
        embeddings=emb, logits=logits, labels=labels, lens=torch.ones(8), batch=None,
        parallel=ParallelLayout.plain(4),
    )
    brain.epoch_stats = EpochStats()
    losses = brain.compute_losses(outputs)
    assert sorted(losses) == ["aam", "aam_parallel", "contrastive", "parallel_cos"]
    hp = brain.hparams
    weights = hp.class_aware_attention(logits[:4], labels[:4].reshape(-1))
    expected = hp.contrastive_loss(emb[:4], labels[:4].reshape(-1), negative_weights=weights)
    torch.testing.assert_close(losses["contrastive"], expected)
    torch.testing.assert_close(losses["aam"], hp.aam_loss(logits[:4], labels[:4]))
    total = brain.compute_objectives(outputs, None, TRAIN)
    stats = brain.epoch_stats.summary()
    alpha = stats["alpha"]
    cls = losses["aam"] + losses["aam_parallel"] + losses["parallel_cos"]
    torch.testing.assert_close(total, alpha * cls + (1 - alpha) * losses["contrastive"])
    assert stats["group_cls"] == pytest.approx(float(cls.detach()), rel=1e-5)


def test_combined_brain_trains_one_step(tmp_path, corpus):
    brain = make_brain(tmp_path, corpus, row=COMBINED_ROW)
    _, batch = first_batch(brain)
    brain.on_fit_start()
    assert np.isfinite(float(brain.fit_batch(batch)))
    summary = brain.epoch_stats.summary()
    assert {"contrastive", "aam_parallel", "parallel_cos", "alpha", "em_masked_share"} <= set(summary)


# ---------------------------------------------------------------------------- the equal-compute control

CONTROL_ROW = "ecapa_aam_twocrop.yaml"


def encoded_rows_per_step(tmp_path, corpus, row):
    """Rows the encoder sees in one training step of ``row`` (a forward hook on the embedding model)."""
    brain = make_brain(tmp_path / row, corpus, row=row)
    _, batch = first_batch(brain)
    brain.on_fit_start()
    seen = []
    hook = brain.modules.embedding_model.register_forward_hook(lambda module, args, out: seen.append(out.shape[0]))
    brain.fit_batch(batch)
    hook.remove()
    return sum(seen), brain


def test_the_control_encodes_as_many_inputs_per_step_as_copypaste(tmp_path, corpus):
    baseline, _ = encoded_rows_per_step(tmp_path, corpus, "ecapa_aam.yaml")
    copypaste, _ = encoded_rows_per_step(tmp_path, corpus, "ecapa_aam_copypaste.yaml")
    control, brain = encoded_rows_per_step(tmp_path, corpus, CONTROL_ROW)
    assert baseline == 4 and copypaste == control == 2 * baseline
    assert brain.hparams.loss_balancer.weights == {"aam": 1.0, "aam_parallel": 1.0, "parallel_cos": 0.0}
    stats = brain.extra_train_stats()
    assert stats["partners_self_crop"] == 4 and stats["partner_fallback_share"] == 0.0


def test_the_control_second_input_is_another_crop_of_the_same_utterance(tmp_path, corpus):
    brain = make_brain(tmp_path, corpus, row=CONTROL_ROW)
    train, batch = first_batch(brain)
    n, crop = 4, int(CROP * 16000)
    assert list(batch.partner_kind) == ["self_crop"] * n
    whole = sx_data.AudioReader(16000)  # the full utterance, to find where each crop comes from

    def position(piece, signal):
        starts = np.flatnonzero(signal[: signal.size - crop + 1] == piece[0])
        return next(int(s) for s in starts if np.array_equal(signal[s : s + crop], piece))

    for i, utt in enumerate(batch.id):
        x, x2 = batch.sig.data[i].numpy(), batch.parallel_sig.data[i].numpy()
        assert x.shape == x2.shape == (crop,)
        signal = whole(train.data[utt]["wav"], utt)[0].numpy()
        # both are crops of this utterance (StopIteration otherwise), at different positions
        assert position(x, signal) != position(x2, signal) and not np.array_equal(x, x2)
