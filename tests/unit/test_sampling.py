"""Tests of SpeakerBalancedBatchSampler."""

import logging
from collections import Counter

import numpy as np
import pytest
import torch
from speechbrain.dataio.dataloader import SaveableDataLoader
from speechbrain.dataio.sampler import DistributedSamplerWrapper
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_ext.sampling import SpeakerBalancedBatchSampler, SpeakerGroupError, read_speaker_groups


def make_labels(seed=0, n_speakers=23, max_utts=17, min_utts=1):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(min_utts, max_utts + 1, size=n_speakers)
    labels = [f"spk{s:02d}" for s, size in enumerate(sizes) for _ in range(size)]
    order = rng.permutation(len(labels))  # dataset order is not grouped by speaker
    return [labels[i] for i in order]


def check_batches(batches, labels, p, k):
    for batch in batches:
        assert len(batch) == p * k
        counts = Counter(labels[i] for i in batch)
        assert len(counts) == p  # P distinct speakers ...
        assert set(counts.values()) == {k}  # ... with K utterances each


@pytest.mark.parametrize("p,k", [(4, 2), (3, 4), (5, 3)])
def test_batches_are_p_speakers_by_k_and_cover_everything(p, k):
    labels = make_labels()
    sampler = SpeakerBalancedBatchSampler(labels, p, k, seed=1)
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        check_batches(batches, labels, p, k)
        assert set(i for b in batches for i in b) == set(range(len(labels)))  # every utterance visited
        # utterances of speakers with at least K of them are distinct within a batch
        sizes = Counter(labels)
        for batch in batches:
            big = [i for i in batch if sizes[labels[i]] >= k]
            assert len(big) == len(set(big))


def test_len_is_fixed_and_epoch_overhead_small():
    labels = make_labels(seed=3, n_speakers=40, max_utts=60, min_utts=2)
    sampler = SpeakerBalancedBatchSampler(labels, 8, 2, seed=0)
    chunks = sum(-(-n // 2) for n in Counter(labels).values())
    assert len(sampler) == -(-chunks // 8)
    lengths = {len(sampler.epoch_batches(e)) for e in range(5)}
    assert lengths == {len(sampler)}
    assert len(sampler) * 16 < 1.1 * len(labels)


def test_dominant_speaker_gets_enough_batches():
    labels = ["a"] * 40 + ["b"] * 2 + ["c"] * 2 + ["d"] * 2
    sampler = SpeakerBalancedBatchSampler(labels, 2, 2, seed=0)
    assert len(sampler) == 20  # speaker a has 20 chunks and can appear once per batch
    batches = list(sampler)
    check_batches(batches, labels, 2, 2)
    assert set(i for b in batches for i in b) == set(range(len(labels)))


def test_deterministic_per_seed_and_epoch():
    labels = make_labels(seed=1)
    a = SpeakerBalancedBatchSampler(labels, 4, 2, seed=11)
    b = SpeakerBalancedBatchSampler(labels, 4, 2, seed=11)
    c = SpeakerBalancedBatchSampler(labels, 4, 2, seed=12)
    a.set_epoch(3)
    b.set_epoch(3)
    c.set_epoch(3)
    assert list(a) == list(b)
    assert list(a) != list(c)
    b.set_epoch(4)
    assert list(a) != list(b)
    a.set_epoch(3)
    assert list(a) == [batch.tolist() for batch in b.epoch_batches(3)]


def test_iterating_without_set_epoch_advances_once_per_iteration(caplog):
    labels = make_labels(seed=2)
    sampler = SpeakerBalancedBatchSampler(labels, 4, 2, seed=5)
    with caplog.at_level(logging.WARNING, logger="speechbrain_ext.sampling"):
        first, second, third = list(sampler), list(sampler), list(sampler)
    assert sampler.epoch == 2 and first != second != third
    assert second == [b.tolist() for b in sampler.epoch_batches(1)]
    assert sum("without set_epoch" in r.message for r in caplog.records) == 1  # logged once


def test_checkpoint_round_trip(tmp_path):
    labels = make_labels(seed=4)
    sampler = SpeakerBalancedBatchSampler(labels, 4, 2, seed=77)
    sampler.set_epoch(6)
    expected = list(sampler)
    Checkpointer(tmp_path, {"sampler": sampler}).save_checkpoint(end_of_epoch=False)
    restored = SpeakerBalancedBatchSampler(labels, 4, 2, seed=0)
    Checkpointer(tmp_path, {"sampler": restored}).recover_if_possible()
    assert (restored.seed, restored.epoch) == (77, 6)
    assert list(restored) == expected  # mid-epoch checkpoint: the same epoch is replayed


def test_checkpoint_at_end_of_epoch_moves_on_without_set_epoch(tmp_path):
    labels = make_labels(seed=4)
    sampler = SpeakerBalancedBatchSampler(labels, 4, 2, seed=77)
    sampler.set_epoch(6)
    list(sampler)
    Checkpointer(tmp_path, {"sampler": sampler}).save_checkpoint(end_of_epoch=True)
    restored = SpeakerBalancedBatchSampler(labels, 4, 2, seed=0)
    Checkpointer(tmp_path, {"sampler": restored}).recover_if_possible()
    list(restored)
    assert restored.epoch == 7


def test_mid_epoch_resume_with_saveable_dataloader(tmp_path):
    """The Brain flow: recover, set_epoch(epoch), iter -> the loader fast-forwards the sampler."""
    labels = make_labels(seed=5)
    dataset = list(range(len(labels)))

    def build():
        sampler = SpeakerBalancedBatchSampler(labels, 4, 2, seed=9)
        loader = SaveableDataLoader(dataset, batch_sampler=sampler, collate_fn=list)
        return sampler, loader, Checkpointer(tmp_path, {"loader": loader, "sampler": sampler})

    sampler, loader, checkpointer = build()
    sampler.set_epoch(2)
    full_epoch = []
    for step, batch in enumerate(loader):
        full_epoch.append(batch)
        if step == 2:
            checkpointer.save_checkpoint(end_of_epoch=False)  # after 3 batches
    assert len(full_epoch) == len(sampler)

    sampler, loader, checkpointer = build()
    checkpointer.recover_if_possible()
    sampler.set_epoch(2)  # Brain._fit_train calls train_sampler.set_epoch(epoch) before iterating
    resumed = list(loader)
    assert resumed == full_epoch[3:]


def test_ddp_partition_is_disjoint_and_balanced():
    labels = make_labels(seed=6, n_speakers=30)
    ranks = [SpeakerBalancedBatchSampler(labels, 3, 2, seed=4, rank=r, world_size=2) for r in range(2)]
    for s in ranks:
        s.set_epoch(1)
    batches = [list(s) for s in ranks]
    assert len(batches[0]) == len(batches[1]) == len(ranks[0]) == len(ranks[1])
    for b0, b1 in zip(*batches):
        assert not {labels[i] for i in b0} & {labels[i] for i in b1}  # disjoint speakers per step
    for b in batches:
        check_batches(b, labels, 3, 2)
    seen = {i for b in batches for batch in b for i in batch}
    assert seen == set(range(len(labels)))  # together the ranks cover the epoch
    single = SpeakerBalancedBatchSampler(labels, 6, 2, seed=4)
    assert len(single) == len(ranks[0])


def test_works_under_speechbrains_distributed_wrapper():
    """rank/world_size None: SpeechBrain's DistributedSamplerWrapper splits whole batches."""
    labels = make_labels(seed=7)
    sampler = SpeakerBalancedBatchSampler(labels, 4, 2, seed=3)
    wrapped = [DistributedSamplerWrapper(sampler, num_replicas=2, rank=r, shuffle=True) for r in range(2)]
    seen = set()
    for w in wrapped:
        w.set_epoch(5)  # passed through to the sampler
        assert sampler.epoch == 5
        batches = list(w)
        check_batches(batches, labels, 4, 2)
        seen |= {i for b in batches for i in b}
    assert seen == set(range(len(labels)))


def test_undersized_speakers_counted_and_logged_once(caplog):
    labels = ["a", "b", "b", "c", "c", "c", "d"]
    with caplog.at_level(logging.WARNING, logger="speechbrain_ext.sampling"):
        sampler = SpeakerBalancedBatchSampler(labels, 2, 3, seed=0)
        list(sampler)
        list(sampler)
    assert sampler.num_undersized_speakers == 3
    assert sum("fewer than K=3" in r.message for r in caplog.records) == 1
    check_batches(list(sampler), labels, 2, 3)


def test_bad_input():
    labels = make_labels(seed=8, n_speakers=5)
    with pytest.raises(ValueError, match=r"P=6 .*K=2.*5 speakers and \d+ utterances"):
        SpeakerBalancedBatchSampler(labels, 6, 2)
    with pytest.raises(ValueError, match=r"world_size=2.*5 speakers"):
        SpeakerBalancedBatchSampler(labels, 3, 2, rank=0, world_size=2)
    with pytest.raises(ValueError, match="utterances"):
        SpeakerBalancedBatchSampler(["a", "a", "b"], 2, 2)  # P K = 4 > 3 utterances
    with pytest.raises(ValueError, match="empty"):
        SpeakerBalancedBatchSampler([], 2, 2)
    with pytest.raises(ValueError):
        SpeakerBalancedBatchSampler(labels, 0, 2)
    with pytest.raises(ValueError):
        SpeakerBalancedBatchSampler(labels, 2, 2, rank=2, world_size=2)
    with pytest.raises(ValueError):
        SpeakerBalancedBatchSampler(labels, 2, 2, rank=0)


def test_tensor_labels_accepted():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    for given in (labels, labels.numpy()):
        sampler = SpeakerBalancedBatchSampler(given, 3, 2)
        check_batches(list(sampler), labels.tolist(), 3, 2)


# ---------------------------------------------------------------------------- batches of a group


def grouped_labels(n_groups=4, per_group=10, utts=6):
    labels = [f"g{g}s{s}" for g in range(n_groups) for s in range(per_group) for _ in range(utts)]
    groups = {f"g{g}s{s}": f"group{g}" for g in range(n_groups) for s in range(per_group)}
    return labels, groups


def groups_per_batch(batches, labels, groups):
    return [len({groups[labels[i]] for i in batch}) for batch in batches]


def test_grouped_batches_draw_their_speakers_from_one_group():
    labels, groups = grouped_labels()
    plain = SpeakerBalancedBatchSampler(labels, 4, 2, seed=5)
    grouped = SpeakerBalancedBatchSampler(labels, 4, 2, seed=5, speaker_groups=groups)
    assert len(grouped) == len(plain) == 30 and grouped.n_groups == 4
    for epoch in (1, 2):
        batches = grouped.epoch_batches(epoch).tolist()
        check_batches(batches, labels, 4, 2)
        # every chunk exactly once: 40 speakers x 3 chunks of 2 = 240 = 30 batches x 8, so no utterance repeats
        assert sorted(i for b in batches for i in b) == list(range(len(labels)))
        mixed = [b for b, n in enumerate(groups_per_batch(batches, labels, groups)) if n > 1]
        # only where groups run short of speakers with chunks left, late in the epoch
        assert len(mixed) <= 5 and min(mixed, default=29) >= 15
    # without groups, 4 speakers of 40 in 4 groups of 10 share one group in ~3 % of the batches
    ungrouped = groups_per_batch(plain.epoch_batches(1).tolist(), labels, groups)
    assert sum(n == 1 for n in ungrouped) <= 5


def test_grouped_share_sets_how_many_batches_are_grouped_and_zero_is_no_grouping():
    labels, groups = grouped_labels(n_groups=8, per_group=30, utts=20)
    plain = SpeakerBalancedBatchSampler(labels, 4, 2, seed=9)
    half = SpeakerBalancedBatchSampler(labels, 4, 2, seed=9, speaker_groups=groups, grouped_share=0.5)
    counts = groups_per_batch(half.epoch_batches(1).tolist(), labels, groups)
    single, chance = sum(n == 1 for n in counts) / len(counts), (29 / 239) * (28 / 238) * (27 / 237)
    # grouped batches (share 0.5) plus the ungrouped ones that fall in one group by chance
    assert abs(single - (0.5 + 0.5 * chance)) < 4 * np.sqrt(0.25 / len(counts))
    zero = SpeakerBalancedBatchSampler(labels, 4, 2, seed=9, speaker_groups=groups, grouped_share=0.0)
    assert np.array_equal(zero.epoch_batches(3), plain.epoch_batches(3))


def test_grouped_batches_are_reproducible_and_partition_the_ranks():
    labels, groups = grouped_labels(n_groups=3, per_group=12, utts=8)
    make = lambda rank: SpeakerBalancedBatchSampler(labels, 3, 2, seed=4, rank=rank, world_size=2,  # noqa: E731
                                                    speaker_groups=lambda: groups)
    r0, r1 = make(0).epoch_batches(2), make(1).epoch_batches(2)
    assert np.array_equal(r0, make(0).epoch_batches(2)) and r0.shape == r1.shape
    for a, b in zip(r0.tolist(), r1.tolist()):
        assert not {labels[i] for i in a} & {labels[i] for i in b}  # ranks see disjoint speakers
    single = [len({groups[labels[i]] for i in a + b}) == 1 for a, b in zip(r0.tolist(), r1.tolist())]
    assert sum(single) >= len(single) - 3  # the 6 speakers of a global batch share a group


def test_bad_speaker_groups_are_named():
    labels, groups = grouped_labels(n_groups=2, per_group=4, utts=4)
    del groups["g1s3"], groups["g0s0"]
    with pytest.raises(SpeakerGroupError, match=r"no group for 2 of the 8 training speakers \(first: 'g0s0', 'g1s3'\)"):
        SpeakerBalancedBatchSampler(labels, 2, 2, speaker_groups=groups)
    _, groups = grouped_labels(n_groups=2, per_group=4, utts=4)
    with pytest.raises(SpeakerGroupError, match=r"grouped_share must be in \[0, 1\], got 1.5"):
        SpeakerBalancedBatchSampler(labels, 2, 2, speaker_groups=groups, grouped_share=1.5)


def test_read_speaker_groups_reads_comma_and_tab_tables_and_names_bad_ones(tmp_path):
    table = tmp_path / "speakers.csv"
    table.write_text("spk_id,split,accent\nS1,train,en-US\nS2,train,en\n")
    assert read_speaker_groups(str(table), "accent") == {"S1": "en-US", "S2": "en"}
    meta = tmp_path / "vox1_meta.csv"  # VoxCeleb1's table: tab-separated
    meta.write_text("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\nid10001\tA.J._Buckley\tm\tIreland\tdev\n"
                    "id10002\tA.R._Rahman\tm\tIndia\tdev\n")
    assert read_speaker_groups(str(meta), "Nationality", key="VoxCeleb1 ID") == {"id10001": "Ireland",
                                                                                "id10002": "India"}
    with pytest.raises(SpeakerGroupError, match=r"speakers.csv: no column 'acent' \(columns: spk_id, split, accent\)"):
        read_speaker_groups(str(table), "acent")
    table.write_text("spk_id,accent\nS1,en\nS2,\n")
    with pytest.raises(SpeakerGroupError, match=r"speakers.csv:3: empty 'accent' value"):
        read_speaker_groups(str(table), "accent")
    table.write_text("spk_id,accent\nS1,en\nS1,en-US\n")
    with pytest.raises(SpeakerGroupError, match=r"speakers.csv:3: speaker 'S1' listed twice"):
        read_speaker_groups(str(table), "accent")
    table.write_text("spk_id,accent\n")
    with pytest.raises(SpeakerGroupError, match=r"speakers.csv: no speakers"):
        read_speaker_groups(str(table), "accent")
