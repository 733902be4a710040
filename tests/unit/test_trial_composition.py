"""speechbrain_ext.trial_composition and the suite section ``composition``: known answers and bad input."""

import os
import re

import numpy as np
import pytest
from suite_fixtures import make_suite

from speechbrain_ext.bootstrap import SpeakerTrials
from speechbrain_ext.scoring import compute_eer
from speechbrain_ext.suite import SuiteError, load_suite
from speechbrain_ext.suite_composition import CompositionSection
from speechbrain_ext.suite_report import ReportContext, RunResult, resolve_sections
from speechbrain_ext.trial_composition import ComposedTrials, CompositionError, TrialComposition, read_attributes
from speechbrain_ext.trial_scores import save_trial_scores, scores_path

KEYS = ["accent", "gender"]


def synthetic_split(rng, n_speakers, same_accent_share, per_speaker=40):
    """Trials of one model whose impostor scores depend only on the cell: same-accent impostors score higher.

    Returns scores, labels, test speaker index, cells (bit 0: same accent, bit 1: same gender).
    """
    labels, speakers, cells = [], [], []
    for s in range(n_speakers):
        for k in range(per_speaker):
            target = k < 4
            same_accent = not target and rng.random() < same_accent_share
            same_gender = target or rng.random() < 0.5
            labels.append(int(target))
            speakers.append(s)
            cells.append(3 if target else int(same_accent) | int(same_gender) << 1)
    labels, cells = np.array(labels, np.int8), np.array(cells)
    scores = rng.normal(size=labels.size) * 0.15 + np.where(labels == 1, 0.6, 0.0) + 0.25 * (cells & 1) * (1 - labels)
    return scores, labels, np.array(speakers, np.int32), cells


def test_reweighted_list_equals_the_replicated_list_exactly():
    rng = np.random.default_rng(0)
    scores, labels, spk, cells = synthetic_split(rng, 6, 0.5, per_speaker=12)
    here = TrialComposition(cells, labels, KEYS)
    shares = here.shares()
    # a reference with three times as many cell-0 impostors as here, relative to the other cells
    wanted = shares * np.array([3, 1, 1, 1]) / (shares * np.array([3, 1, 1, 1])).sum()
    ref_cells = np.repeat(np.arange(4), np.rint(wanted * 1000).astype(int))
    ref = TrialComposition(ref_cells, np.zeros(ref_cells.size, np.int8), KEYS)
    weights = here.weights_to(ref)
    assert weights.tolist() == [75, 25, 25, 25]
    got = ComposedTrials(scores, labels, spk, 6, here, weights).metrics(np.ones((1, 6), int), (0.01,))
    repeat = np.where(labels == 1, 1, np.where(cells == 0, 3, 1))
    expected = compute_eer(np.repeat(scores, repeat)[np.repeat(labels, repeat) == 1],
                           np.repeat(scores, repeat)[np.repeat(labels, repeat) == 0])[0]
    assert got["eer"][0] == expected
    # a speaker draw multiplies that speaker's trials, in every cell
    counts = np.array([[2, 0, 1, 1, 1, 1]])
    got = ComposedTrials(scores, labels, spk, 6, here, weights).metrics(counts, (0.01,))["eer"][0]
    rep = repeat * counts[0][spk]
    assert got == compute_eer(np.repeat(scores, rep)[np.repeat(labels, rep) == 1],
                              np.repeat(scores, rep)[np.repeat(labels, rep) == 0])[0]


def test_equal_weights_give_the_plain_speaker_bootstrap():
    rng = np.random.default_rng(1)
    scores, labels, spk, cells = synthetic_split(rng, 8, 0.3)
    comp = TrialComposition(cells, labels, KEYS)
    counts = np.vstack([np.ones(8, int), rng.integers(0, 3, size=(5, 8))])
    plain = SpeakerTrials(scores, labels, spk, 8).metrics(counts)
    composed = ComposedTrials(scores, labels, spk, 8, comp, [25, 25, 25, 25]).metrics(counts)
    for key in plain:
        np.testing.assert_array_equal(plain[key], composed[key])


def test_matching_the_composition_recovers_the_reference_eer():
    """One model, two splits that differ only in how often impostors share the accent."""
    rng = np.random.default_rng(2)
    ref = synthetic_split(rng, 150, 0.17)
    tgt = synthetic_split(rng, 150, 0.50)
    eer = lambda s, y: compute_eer(s[y == 1], s[y == 0])[0]  # noqa: E731
    ref_eer, raw_eer = eer(ref[0], ref[1]), eer(tgt[0], tgt[1])
    assert raw_eer > 1.3 * ref_eer  # the harder impostor mix alone raises the EER
    ref_comp, tgt_comp = TrialComposition(ref[3], ref[1], KEYS), TrialComposition(tgt[3], tgt[1], KEYS)
    matched = ComposedTrials(*tgt[:3], 150, tgt_comp, tgt_comp.weights_to(ref_comp)).metrics(
        np.ones((1, 150), int))["eer"][0]
    assert abs(matched - ref_eer) < 0.15 * ref_eer


def test_cells_from_files_and_bad_input(tmp_path):
    (tmp_path / "speakers.csv").write_text("spk_id,gender,accent\nA,f,en\nB,m,en\nC,f,us\n")
    attrs = read_attributes(str(tmp_path / "speakers.csv"), KEYS)
    trials = tmp_path / "all.txt"
    trials.write_text("1 a1 a2\n0 a1 b1\n0 b1 c1\n0 a2 c1\n")
    utt2spk = {"a1": "A", "a2": "A", "b1": "B", "c1": "C"}
    comp = TrialComposition.from_files(str(trials), utt2spk, attrs, KEYS)
    assert comp.cells.tolist() == [3, 1, 0, 2] and comp.labels.tolist() == [1, 0, 0, 0]
    assert comp.cell_name(2) == "other accent, same gender"
    with pytest.raises(CompositionError, match=r"speakers.csv: no column 'base'"):
        read_attributes(str(tmp_path / "speakers.csv"), ["base"])
    with pytest.raises(CompositionError, match=r"all.txt: speaker 'C' has no attributes"):
        TrialComposition.from_files(str(trials), utt2spk, {k: attrs[k] for k in "AB"}, KEYS)
    with pytest.raises(Exception, match=r"all.txt: test id 'b1' is not in the manifest"):
        TrialComposition.from_files(str(trials), {k: v for k, v in utt2spk.items() if k != "b1"}, attrs, KEYS)
    # a reference cell the target lacks cannot be matched: named
    ref = TrialComposition([0, 1, 2, 3], [0, 0, 0, 0], KEYS, "eval/all.txt")
    with pytest.raises(CompositionError, match=r"no non-target trial with same accent, same gender, which is 25.00 % "
                                               r"of eval/all.txt's"):
        comp.weights_to(ref)
    with pytest.raises(CompositionError, match="keys"):
        comp.weights_to(TrialComposition([0], [0], ["accent"]))
    with pytest.raises(CompositionError, match="run x: the scores and .*all.txt are not the same trials"):
        ComposedTrials([0.1, 0.2, 0.3, 0.4], [1, 1, 0, 0], [0, 0, 1, 1], 2, comp, [1, 1, 1, 1], "run x")
    # same labels, other test speakers (the list was reordered): refused too
    assert comp.test_speakers.tolist() == ["A", "B", "C", "C"]
    with pytest.raises(CompositionError, match="run y: .*labels or test speakers differ"):
        ComposedTrials([0.1, 0.2, 0.3, 0.4], [1, 0, 0, 0], [0, 2, 1, 2], 3, comp, [1, 1, 1, 1], "run y",
                       speakers=["A", "B", "C"])
    ComposedTrials([0.1, 0.2, 0.3, 0.4], [1, 0, 0, 0], [0, 1, 2, 2], 3, comp, [1, 1, 1, 1], "run z",
                   speakers=["A", "B", "C"])


# ---------------------------------------------------------------------------- the section
N_SPK, PER_SPK = 20, 10  # as the fake recipe's trial lists


def write_split(runs, split, same_accent_upto):
    """Manifest, trial list and speaker rows of a split laid out like the fake runs' scores (speaker i: 10 trials)."""
    prefix = split[0].upper()
    os.makedirs(os.path.join(runs, "manifests", "trials", split), exist_ok=True)
    rows, lines = [], []
    for s in range(N_SPK):
        rows.append(f"{prefix}{s},{'en' if s % 2 == 0 else 'us'},{'f' if s % 4 < 2 else 'm'}")
        for k in range(PER_SPK):
            other = (s + 2 * k) % N_SPK if k <= same_accent_upto else (s + 2 * k + 1) % N_SPK  # same parity: accent
            enrol = s if k == 0 else (other if other != s else (s + 1) % N_SPK)
            lines.append(f"{int(k == 0)} {prefix}{enrol}_e {prefix}{s}_t")
    with open(os.path.join(runs, "manifests", f"{split}.csv"), "w") as f:
        f.write("ID,duration,wav,spk_id\n")
        for s in range(N_SPK):
            f.write(f"{prefix}{s}_e,1,x.wav,{prefix}{s}\n{prefix}{s}_t,1,x.wav,{prefix}{s}\n")
    with open(os.path.join(runs, "manifests", "trials", split, "all.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return rows


def fabricate(suite, ood_same_accent_upto=5):
    """Score files of every run, and manifests: impostors share the accent in 2 of 9 eval trials, more in ood."""
    rng = np.random.default_rng(3)
    runs_dir = suite.runs
    rows = write_split(runs_dir, "eval", 2) + write_split(runs_dir, "ood", ood_same_accent_upto)
    with open(os.path.join(runs_dir, "manifests", "speakers.csv"), "w") as f:
        f.write("spk_id,accent,gender\n" + "\n".join(rows) + "\n")
    labels = np.tile([1] + [0] * (PER_SPK - 1), N_SPK).astype(np.int8)
    runs = {}
    for row in suite.rows:
        for seed in suite.seeds:
            folder = suite.run_folder(row, seed)
            runs[(row.name, seed)] = RunResult(row, seed, folder, {"epoch": 1})
            for split in suite.splits:
                scores = rng.normal(size=labels.size) + 2.0 * labels
                save_trial_scores(scores_path(os.path.join(folder, "report"), split), {"all": (scores, labels)},
                                  {"all": [f"{split[0].upper()}{s}" for s in np.repeat(np.arange(N_SPK), PER_SPK)]},
                                  {"seed": seed})
    return runs


def test_the_section_renders_both_compositions_and_every_ratio(tmp_path):
    suite = load_suite(make_suite(tmp_path, rows=("base", "good"), seeds=(1, 2),
                                  sections=[{"section": "composition", "keys": KEYS}]))
    (section,) = resolve_sections(suite)
    assert isinstance(section, CompositionSection) and section.keys == tuple(KEYS)
    runs = fabricate(suite)
    ctx = ReportContext(suite, runs, {}, str(tmp_path), "report")
    shares, rows = section.numbers(ctx)
    assert shares["reference"][1] + shares["reference"][3] == pytest.approx(2 / 9)  # same accent
    assert shares["target"][1] + shares["target"][3] == pytest.approx(5 / 9)
    for r in rows:
        assert r["n_runs"] == 2
        for key in ("reference", "raw", "matched", "raw_ratio", "matched_ratio"):
            assert r[key]["low"] <= r[key]["value"] <= r[key]["high"], key
    text = "\n".join(section.render(ctx))
    assert "| same accent, same gender |" in text and "| system base | 2 |" in text


def test_the_section_says_why_it_cannot_match_and_fails_on_missing_files(tmp_path):
    suite = load_suite(make_suite(tmp_path, rows=("base",), seeds=(1,),
                                  sections=[{"section": "composition", "keys": KEYS}]))
    runs = fabricate(suite, ood_same_accent_upto=9)  # every ood impostor shares the accent
    (section,) = resolve_sections(suite)
    text = "\n".join(section.render(ReportContext(suite, runs, {}, str(tmp_path), "report")))
    assert re.search(r"Not computed: .*ood/all.txt: no non-target trial with other accent, \w+ gender, which is "
                     r"\d+\.\d\d % of .*eval/all.txt's", text)
    os.remove(os.path.join(suite.runs, "manifests", "speakers.csv"))  # a missing file is the suite's error
    with pytest.raises(SuiteError, match=r"section composition: .*speakers.csv"):
        section.render(ReportContext(suite, runs, {}, str(tmp_path), "report"))


def test_the_section_reads_a_tab_separated_speaker_table_with_another_id_column(tmp_path):
    suite = load_suite(make_suite(tmp_path, rows=("base",), seeds=(1,), sections=[{
        "section": "composition", "keys": ["Nationality", "Gender"], "attributes": "manifests/vox1_meta.csv",
        "id_column": "VoxCeleb1 ID", "delimiter": "\t"}]))
    runs = fabricate(suite)
    table = open(os.path.join(suite.runs, "manifests", "speakers.csv")).read().splitlines()[1:]
    with open(os.path.join(suite.runs, "manifests", "vox1_meta.csv"), "w") as f:  # VoxCeleb1's layout
        f.write("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n")
        f.writelines(f"{spk}\tX\t{gender}\t{accent}\tdev\n" for spk, accent, gender in (r.split(",") for r in table))
    (section,) = resolve_sections(suite)
    text = "\n".join(section.render(ReportContext(suite, runs, {}, str(tmp_path), "report")))
    assert "| same Nationality, same Gender |" in text and "| system base | 1 |" in text


def test_a_narrower_gap_is_resolved_against_the_reference_and_an_identical_system_is_not(tmp_path):
    # base: EER about 35 % on eval, about 70 % on ood (targets scored BELOW impostors): ratio about 2.
    # narrow: ood as easy as eval, ratio about 1. same: base's score files, its ratio base's in every draw.
    suite = load_suite(make_suite(tmp_path, rows=("base", "same", "narrow"), seeds=(1, 2),
                                  sections=[{"section": "composition", "keys": KEYS}]))
    runs_dir = suite.runs
    rows = write_split(runs_dir, "eval", 2) + write_split(runs_dir, "ood", 2)
    with open(os.path.join(runs_dir, "manifests", "speakers.csv"), "w") as f:
        f.write("spk_id,accent,gender\n" + "\n".join(rows) + "\n")
    labels = np.tile([1] + [0] * (PER_SPK - 1), N_SPK).astype(np.int8)
    separation = {("base", "eval"): 0.8, ("base", "ood"): -1.0, ("narrow", "eval"): 0.8, ("narrow", "ood"): 0.8}
    runs = {}
    for seed in suite.seeds:
        rng = np.random.default_rng(seed)
        per_split = {(name, split): rng.normal(size=(2, labels.size)) for name in ("base", "narrow")
                     for split in suite.splits}
        for row in suite.rows:
            source = "base" if row.name == "same" else row.name
            folder = suite.run_folder(row, seed)
            runs[(row.name, seed)] = RunResult(row, seed, folder, {"epoch": 1})
            for split in suite.splits:
                noise = per_split[(source, split)]
                scores = np.where(labels == 1, noise[0] + separation[(source, split)], noise[1])
                save_trial_scores(scores_path(os.path.join(folder, "report"), split), {"all": (scores, labels)},
                                  {"all": [f"{split[0].upper()}{s}" for s in np.repeat(np.arange(N_SPK), PER_SPK)]},
                                  {"seed": seed})
    (section,) = resolve_sections(suite)
    ctx = ReportContext(suite, runs, {}, str(tmp_path), "report")
    _, table = section.numbers(ctx)
    by_name = {r["system"]: r for r in table}
    assert "ratio_difference" not in by_name["system base"]
    same = by_name["system same"]["ratio_difference"]
    for kind in ("raw", "matched"):
        assert same[kind]["paired"] and same[kind]["difference"] == 0.0
        assert same[kind]["low"] == same[kind]["high"] == 0.0 and same[kind]["verdict"] == "not resolved"
    narrow, base = by_name["system narrow"], by_name["system base"]
    d = narrow["ratio_difference"]["raw"]
    assert d["difference"] == pytest.approx(narrow["raw_ratio"]["value"] - base["raw_ratio"]["value"])
    assert d["high"] < 0 and d["verdict"] == "better" and base["raw_ratio"]["value"] > 1.5
    text = "\n".join(section.render(ctx))
    assert "| system narrow | paired by seed | " in text and "**better**" in text
