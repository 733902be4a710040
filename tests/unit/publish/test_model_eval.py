"""``python -m speechbrain_ext.model_eval``: an exported model scored on a recipe's trial lists, as a run is.

That it reproduces a trained run's own evaluation, score for score, is tested on the demo's
published model (tests/recipes/test_demo.py); here: what it writes, that the embeddings are
the model's own, the seed a comparison pairs by, resampling, and bad input.
"""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from publish_helpers import write_wav

from speechbrain_ext.batching import embed_batch
from speechbrain_ext.compare import load_run
from speechbrain_ext.model_eval import ModelEvalError, evaluate_model, main, model_digest
from speechbrain_ext.publish.verify import VerifyError, load_model
from speechbrain_ext.splits import Split

UTTERANCES = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C", "c2": "C"}


def corpus(root, rate=16000):
    """Six utterances of three speakers, every pair of them a trial; ``[Split]``."""
    os.makedirs(root / "trials", exist_ok=True)
    rows = []
    for i, (utt, spk) in enumerate(UTTERANCES.items()):
        write_wav(root / f"{utt}.wav", 0.5 + 0.1 * i, i, rate=rate)
        rows.append(f"{utt},{0.5 + 0.1 * i:.1f},$data_root/{utt}.wav,{spk}\n")
    (root / "eval.csv").write_text("ID,duration,wav,spk_id\n" + "".join(rows))
    ids = list(UTTERANCES)
    trials = [f"{int(UTTERANCES[x] == UTTERANCES[y])} {x} {y}\n" for i, x in enumerate(ids) for y in ids[i + 1:]]
    (root / "trials" / "all.txt").write_text("".join(trials))
    return [Split("eval", str(root / "eval.csv"), str(root / "trials"))]


def test_scores_every_trial_with_the_models_own_embeddings(exported, tmp_path):
    _, model_dir = exported
    splits = corpus(tmp_path)
    out = tmp_path / "out"
    payload = evaluate_model(model_dir, splits, str(tmp_path), str(out), seed=7, n_draws=20)
    counts = payload["conditions"]["all"]
    assert (counts["n_target"], counts["n_nontarget"]) == (3, 12)
    assert payload["seed"] == 7 and payload["model_digest"] == model_digest(model_dir)
    assert json.load(open(out / "metrics.json"))["splits"]["eval"]["conditions"]["all"]["n_target"] == 3
    # the scores a comparison reads: every trial, the seed it pairs by, the export's system name
    scores = load_run(str(out), "eval")
    assert scores.seed == 7 and scores.meta["system"] == json.load(open(os.path.join(model_dir, "export.json")))[
        "system"]
    # a trial's score is the cosine of the model's own embeddings of the two files, each alone
    model = load_model(model_dir)
    parts = [model.mods[k].eval() for k in ("compute_features", "mean_var_norm", "embedding_model")]

    def embedding(utt):
        wav = torch.from_numpy(sf.read(tmp_path / f"{utt}.wav", dtype="float32")[0])[None]
        return embed_batch(*parts, wav, torch.ones(1))[0, 0]

    trials = [line.split() for line in (tmp_path / "trials" / "all.txt").read_text().splitlines()]
    emb = {utt: embedding(utt) for utt in UTTERANCES}
    expected = [torch.nn.functional.cosine_similarity(emb[x], emb[y], dim=0).item() for _, x, y in trials]
    saved, labels, _ = scores.conditions["all"]
    assert np.sort(saved) == pytest.approx(np.sort(expected), abs=1e-5)
    assert sorted(labels.tolist()) == sorted(int(lab) for lab, _, _ in trials)
    # a second call reads the embedding cache and gives the same scores
    again = evaluate_model(model_dir, splits, str(tmp_path), str(tmp_path / "again"), seed=7, n_draws=20,
                           cache_dir=str(out / "embeddings"))
    assert again["conditions"]["all"]["eer"] == counts["eer"]


def test_audio_at_another_rate_is_read_at_the_models_rate(exported, tmp_path):
    import torchaudio

    _, model_dir = exported
    at16, at32 = tmp_path / "r16", tmp_path / "r32"
    s16 = corpus(at16)
    shutil.copytree(at16, at32)
    for utt in UTTERANCES:  # the same audio stored at 32 kHz
        wav, _ = sf.read(at16 / f"{utt}.wav", dtype="float32")
        up = torchaudio.functional.resample(torch.from_numpy(wav), 16000, 32000).numpy()
        sf.write(at32 / f"{utt}.wav", up, 32000)
    s32 = [Split("eval", str(at32 / "eval.csv"), str(at32 / "trials"))]
    evaluate_model(model_dir, s16, str(at16), str(at16 / "out"), n_draws=20)
    evaluate_model(model_dir, s32, str(at32), str(at32 / "out"), n_draws=20)
    scores16 = load_run(str(at16 / "out"), "eval").conditions["all"][0]
    scores32 = load_run(str(at32 / "out"), "eval").conditions["all"][0]
    assert scores32 == pytest.approx(scores16, abs=0.02)


def test_bad_model_folders_are_named(exported, tmp_path, capsys):
    _, model_dir = exported
    splits = corpus(tmp_path)
    with pytest.raises(ModelEvalError, match=f"model folder not found: {tmp_path / 'none'}"):
        evaluate_model(str(tmp_path / "none"), splits, str(tmp_path), str(tmp_path / "out"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VerifyError, match=f"model folder {empty} has no hyperparams.yaml"):
        evaluate_model(str(empty), splits, str(tmp_path), str(tmp_path / "out"))
    # a model whose YAML builds no embedding model (e.g. a classifier-only export)
    partial = tmp_path / "partial"
    shutil.copytree(model_dir, partial)
    text = (partial / "hyperparams.yaml").read_text()
    without = text.replace("\n  embedding_model: !ref <embedding_model>\n", "\n", 1)  # from `modules`
    assert without != text
    (partial / "hyperparams.yaml").write_text(without)
    with pytest.raises(ModelEvalError, match="builds no embedding_model among its modules"):
        evaluate_model(str(partial), splits, str(tmp_path), str(tmp_path / "out"))
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "export.json").write_text("{not json")
    with pytest.raises(ModelEvalError, match=f"{broken / 'export.json'}: not readable JSON"):
        evaluate_model(str(broken), splits, str(tmp_path), str(tmp_path / "out"))
    # the command line: an error line naming the file, exit status 2
    assert main([str(tmp_path / "out"), str(tmp_path / "missing.yaml"), "--model", model_dir]) == 2
    assert f"hyperparameter file not found: {tmp_path / 'missing.yaml'}" in capsys.readouterr().err
