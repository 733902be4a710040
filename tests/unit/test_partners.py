"""Tests of speechbrain_ext.partners: CopyPaste partner selection and its keyed seed (methods.md B.1)."""

import numpy as np
import pytest

from speechbrain_ext.partners import CopyPastePartners, copypaste_seed

# ---------------------------------------------------------------------------- partners


def _manifest():
    ids, spk, emo = [], [], []

    def add(s, emotions):
        for i, e in enumerate(emotions):
            ids.append(f"{s}_{i}")
            spk.append(s)
            emo.append(e)

    add("multi", ["neu", "hap", "sad", "neu", "ang", "hap", "neu"])
    add("two", ["neu", "sad"])
    add("oneemo", ["neu", "neu", "neu"])
    add("single", ["hap"])
    # Interleave rows so blocks are not contiguous in manifest order.
    perm = np.random.default_rng(0).permutation(len(ids))
    return [ids[i] for i in perm], [spk[i] for i in perm], [emo[i] for i in perm]


def test_partners_same_speaker_other_emotion_and_fallbacks():
    ids, spk, emo = _manifest()
    p = CopyPastePartners(ids, spk, emo, seed=0)
    spk_of, emo_of = dict(zip(ids, spk)), dict(zip(ids, emo))
    for epoch in range(10):
        for utt in ids:
            partner, kind = p.pick(utt, epoch=epoch, return_kind=True)
            assert spk_of[partner] == spk_of[utt]
            if spk_of[utt] in ("multi", "two"):
                assert kind == "other_emotion" and emo_of[partner] != emo_of[utt]
            elif spk_of[utt] == "oneemo":
                assert kind == "same_emotion_fallback" and partner != utt
            else:
                assert kind == "self_fallback" and partner == utt
    assert p.counts == {
        "other_emotion": 10 * 9,
        "same_emotion_fallback": 10 * 3,
        "speaker_only_fallback": 0,
        "self_fallback": 10 * 1,
    }
    assert p.kind_totals == {
        "other_emotion": 9,
        "same_emotion_fallback": 3,
        "speaker_only_fallback": 0,
        "self_fallback": 1,
    }


def test_partners_cover_all_candidates():
    ids, spk, emo = _manifest()
    p = CopyPastePartners(ids, spk, emo, seed=1)
    got = {p.pick("multi_0", epoch=e, count=False) for e in range(200)}  # emotion "neu"
    assert got == {"multi_1", "multi_2", "multi_4", "multi_5"}
    got = {p.pick("oneemo_1", epoch=e, count=False) for e in range(100)}
    assert got == {"oneemo_0", "oneemo_2"}


def test_partners_deterministic():
    ids, spk, emo = _manifest()
    a = CopyPastePartners(ids, spk, emo, seed=3)
    b = CopyPastePartners(ids, spk, emo, seed=3)
    picks = {(u, e): a.pick(u, epoch=e) for e in range(5) for u in ids}
    # Any call order, index or id, another instance (e.g. a worker's copy): the same answer.
    for u, e in reversed(list(picks)):
        assert b.pick(u, epoch=e) == picks[(u, e)]
        assert b.pick(ids.index(u), epoch=e) == picks[(u, e)]
    assert all(b.pick(u) == picks[(u, 0)] for u in ids)  # epoch 0 by default
    # Epochs and seeds change the draws of utterances with a choice.
    assert any(picks[("multi_0", 0)] != picks[("multi_0", e)] for e in range(1, 5))
    c = CopyPastePartners(ids, spk, emo, seed=4)
    assert any(c.pick(u, epoch=0) != picks[(u, 0)] for u in ids if u.startswith("multi"))
    # Stable across processes and Python hash seeds (keyed BLAKE2, not hash()): pinned values.
    pinned = CopyPastePartners(["a", "b", "c", "d"], ["s"] * 4, ["x", "y", "y", "z"], seed=0)
    assert [pinned.pick("a", epoch=e) for e in range(8)] == ["d", "d", "c", "b", "c", "d", "c", "c"]
    assert [pinned.pick("b", epoch=e) for e in range(8)] == ["d", "a", "d", "a", "d", "a", "d", "d"]


def test_partners_missing_emotion():
    ids, spk, _ = _manifest()
    with pytest.raises(ValueError, match=r"'emotion'.*train\.csv"):
        CopyPastePartners(ids, spk, None, manifest="train.csv")
    p = CopyPastePartners(ids, spk, None, require_emotion=False)
    spk_of = dict(zip(ids, spk))
    for utt in ids:
        partner, kind = p.pick(utt, return_kind=True)
        assert spk_of[partner] == spk_of[utt]
        if spk_of[utt] == "single":
            assert kind == "self_fallback" and partner == utt
        else:
            assert kind == "speaker_only_fallback" and partner != utt
    assert p.counts["speaker_only_fallback"] == 12 and p.counts["self_fallback"] == 1
    with pytest.raises(ValueError, match="emotion"):
        CopyPastePartners(["a", "b"], ["s", "s"], ["x", None])
    with pytest.raises(ValueError, match="duplicate"):
        CopyPastePartners(["a", "a"], ["s", "s"], ["x", "y"])
    with pytest.raises(KeyError):
        p.pick("nope")


def test_copypaste_seed_is_stable_and_separates_epochs_and_ids():
    assert copypaste_seed(1, 2, "u") == copypaste_seed(1, 2, "u")
    assert len({copypaste_seed(1, e, u) for e in range(3) for u in "abc"}) == 9
