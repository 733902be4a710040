"""The one keyed draw reproduces, bit for bit, the three hashes it replaced (crop, partner, CopyPaste seed)."""

import hashlib

import numpy as np
import soundfile as sf

from speechbrain_ext.data import AudioReader
from speechbrain_ext.partners import CopyPastePartners, copypaste_seed


def _blake(text):
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


KEYS = [(1986, e, u) for e in (0, 1, 7) for u in ("S0001_000001", "a", "ü-ß")]


def test_crop_offsets_are_the_former_hash(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, np.arange(16000, dtype="float32") / 16000, 16000)
    for seed, epoch, utt in KEYS:
        reader = AudioReader(16000, crop_seconds=0.1, seed=seed)
        reader.set_epoch(epoch)
        sig, _ = reader(str(path), utt)
        start = _blake(f"{seed}|{epoch}|{utt}") % (16000 - 1600 + 1)
        assert round(float(sig[0]) * 16000) == start


def test_copypaste_seed_is_the_former_hash():
    for seed, epoch, utt in KEYS:
        assert copypaste_seed(seed, epoch, utt) == _blake(f"{seed}\x1f{epoch}\x1f{utt}\x1fcopypaste") & (2**63 - 1)


def test_partner_draws_are_the_former_hash():
    ids = [f"u{i}" for i in range(7)]
    partners = CopyPastePartners(ids, ["s"] * 7, ["x"] + ["y"] * 6, seed=1986)
    for epoch in range(5):
        for i in range(1, 7):  # emotion y: 1 of 1 "x" candidates, kind other_emotion; u0 picks among 6
            assert partners.pick(ids[i], epoch=epoch) == "u0"
        draw = _blake(f"1986\x1f{epoch}\x1fu0")
        assert partners.pick("u0", epoch=epoch) == ids[1 + draw % 6]
