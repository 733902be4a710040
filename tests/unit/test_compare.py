"""Run comparison on fabricated runs with known answers: score files, intervals over speakers
and seeds, paired differences and verdicts, resolution, the report and the command line."""

import json
import os
import re
import shlex

import numpy as np
import pytest

from speechbrain_ext.compare import ComparisonError, SplitComparison, find_scores, paired_difference, summarise
from speechbrain_ext.compare_report import build_report, main, render_markdown
from speechbrain_ext.scoring import compute_eer
from speechbrain_ext.trial_scores import (
    MissingScoresError,
    TrialScores,
    TrialScoresError,
    load_trial_scores,
    save_trial_scores,
    scores_path,
    speakers_of_trials,
)

N_SPK = 30
DRAWS = 300


def trial_list(seed=0, n_speakers=N_SPK, per_speaker=40, target_fraction=0.25):
    """Labels and test-speaker index of a fabricated trial list."""
    rng = np.random.default_rng(seed)
    speakers = np.repeat(np.arange(n_speakers), per_speaker).astype(np.int32)
    labels = (rng.random(speakers.size) < target_fraction).astype(np.int8)
    labels[::per_speaker] = 1  # every speaker has a target and (almost surely) a non-target
    labels[1::per_speaker] = 0
    return labels, speakers


def run(separation, seed, conditions=("all",), trials=None, name=None, noise_seed=None):
    """A run whose scores are N(0, 1) + separation * label on each condition's list."""
    labels, speakers = trials or trial_list()
    rng = np.random.default_rng(seed if noise_seed is None else noise_seed)
    conds = {c: ((rng.normal(size=labels.size) + separation * labels).astype(np.float32), labels, speakers)
             for c in conditions}
    names = tuple(f"spk{i:03d}" for i in range(N_SPK))
    return TrialScores(name or f"run-{separation}-{seed}", names, conds, {"seed": seed})


def write_run(folder, trial_scores, split="eval"):
    names = np.asarray(trial_scores.speakers)
    save_trial_scores(
        scores_path(os.path.join(folder, "report"), split),
        {c: (s, y) for c, (s, y, _) in trial_scores.conditions.items()},
        {c: names[g] for c, (_, _, g) in trial_scores.conditions.items()},
        trial_scores.meta,
    )
    return str(folder)


# ------------------------------------------------------------------------------- score files


def test_score_file_round_trip_keeps_every_trial(tmp_path):
    scores = np.array([0.5, 0.25, 0.125, 1 / 3])  # 1/3 is not a float32: kept as float64
    path = scores_path(str(tmp_path), "eval")
    save_trial_scores(path, {"all": (scores, [1, 0, 0, 1]), "f32": (scores[:3], [1, 0, 1])},
                      {"all": ["b", "a", "b", "c"], "f32": ["c", "c", "a"]}, {"seed": 7, "system": "x"})
    ts = load_trial_scores(path)
    assert ts.speakers == ("a", "b", "c") and ts.seed == 7 and ts.meta["system"] == "x"
    s, y, g = ts.conditions["all"]
    assert s.dtype == np.float64 and np.array_equal(s, scores)
    assert y.tolist() == [1, 0, 0, 1] and g.tolist() == [1, 0, 1, 2]
    assert ts.conditions["f32"][0].dtype == np.float32
    assert os.listdir(os.path.dirname(path)) == ["eval.npz"]  # atomic: no temporary left


@pytest.mark.parametrize(
    "scores_by_condition, speakers, message",
    [
        ({"all": ([0.1, np.nan], [1, 0])}, {"all": ["a", "a"]}, "condition 'all': 1 non-finite score"),
        ({"all": ([0.1, 0.2], [1, 1])}, {"all": ["a", "a"]}, "condition 'all': 2 target and 0 non-target"),
        ({"all": ([0.1, 0.2], [1, 0.5])}, {"all": ["a", "a"]}, "condition 'all': labels must be 0"),
        ({"all": ([0.1, 0.2], [1, 0])}, {"all": ["a"]}, "condition 'all': 1 test speakers for 2 scores"),
        ({"all": ([0.1, 0.2], [1, 0])}, {}, r"no test speakers for condition\(s\) \['all'\]"),
        ({"a/b": ([0.1, 0.2], [1, 0])}, {"a/b": ["a", "a"]}, "must be non-empty and without '/'"),
    ],
)
def test_bad_scores_are_not_written(tmp_path, scores_by_condition, speakers, message):
    path = scores_path(str(tmp_path), "eval")
    with pytest.raises(TrialScoresError, match=message):
        save_trial_scores(path, scores_by_condition, speakers)
    assert not os.path.exists(path)


def _raw_file(tmp_path, **overrides):
    arrays = {"format": np.array("speechbrain_ext.trial_scores/1"), "speakers": np.array(["a", "b"]),
              "conditions": np.array(["all"]), "meta": np.array("{}"),
              "scores/all": np.array([0.9, 0.1, 0.2], np.float32), "labels/all": np.array([1, 0, 0], np.int8),
              "test_speaker/all": np.array([0, 1, 1], np.int32)}
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = str(tmp_path / "run.npz")
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"labels/all": None}, "no key 'labels/all'"),
        ({"speakers": None}, "no key 'speakers'"),
        ({"format": np.array("other/2")}, "format 'other/2'"),
        ({"scores/all": np.array([0.9, np.inf, 0.2])}, "condition 'all': 1 non-finite score"),
        ({"labels/all": np.array([0, 0, 0], np.int8)}, "condition 'all': 0 target and 3 non-target"),
        ({"test_speaker/all": np.array([0, 1], np.int32)}, "condition 'all': 2 test speakers for 3 scores"),
        ({"test_speaker/all": np.array([0, 1, 2], np.int32)}, r"condition 'all': test-speaker indices .* \[0, 2\)"),
        ({"meta": np.array("{not json")}, "key 'meta' is not JSON"),
    ],
)
def test_bad_score_files_name_file_and_key(tmp_path, overrides, message):
    path = _raw_file(tmp_path, **overrides)
    with pytest.raises(TrialScoresError, match=f"run.npz: .*{message}"):
        load_trial_scores(path)


def test_missing_and_unreadable_score_files(tmp_path):
    with pytest.raises(MissingScoresError, match="no per-trial score file .*nope.npz"):
        load_trial_scores(str(tmp_path / "nope.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(TrialScoresError, match="junk.npz: not a readable score file"):
        load_trial_scores(str(tmp_path / "junk.npz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingScoresError, match=r"run .*empty: no per-trial scores of split 'ood'"):
        find_scores(str(tmp_path / "empty"), "ood")
    with pytest.raises(MissingScoresError, match="no such folder"):
        find_scores(str(tmp_path / "absent"), "eval")


def test_speakers_of_trials_maps_ids_and_names_unknown_ones():
    assert speakers_of_trials(["u1", "u2", "u1"], {"u1": "A", "u2": "B"}).tolist() == ["A", "B", "A"]
    with pytest.raises(TrialScoresError, match="eval/all.txt: test id 'u9'"):
        speakers_of_trials(["u1", "u9"], {"u1": "A"}, "eval/all.txt")


# ----------------------------------------------------------------------------- known answers


def test_perfect_system_has_zero_error_and_a_zero_interval():
    row = summarise({"perfect": [run(50.0, 1), run(50.0, 2)]}, n_draws=DRAWS)[0]
    for m in row["metrics"].values():
        assert (m["value"], m["low"], m["high"]) == (0.0, 0.0, 0.0)


def test_point_estimate_is_the_mean_of_the_runs_full_list_metric():
    runs = [run(1.5, 1), run(1.5, 2), run(1.5, 3)]
    row = summarise({"s": runs}, n_draws=DRAWS)[0]
    eers = []
    for r in runs:
        s, y, _ = r.conditions["all"]
        eers.append(compute_eer(s[y == 1], s[y == 0])[0])
    assert row["metrics"]["eer"]["per_run"] == eers
    assert row["metrics"]["eer"]["value"] == pytest.approx(np.mean(eers), abs=1e-15)
    assert row["metrics"]["eer"]["low"] < row["metrics"]["eer"]["value"] < row["metrics"]["eer"]["high"]


def test_system_against_itself_is_exactly_zero_and_not_resolved():
    runs = [run(1.0, 1), run(1.0, 2)]
    cmp = SplitComparison({"a": runs, "b": runs}, n_draws=DRAWS)
    for d in cmp.difference("a", "b"):
        assert d["paired_seeds"]
        for m in d["metrics"].values():
            assert (m["difference"], m["low"], m["high"], m["verdict"]) == (0.0, 0.0, 0.0, "not resolved")


def test_clearly_better_and_clearly_worse():
    good, base = [run(3.0, s) for s in (1, 2, 3)], [run(1.0, s) for s in (1, 2, 3)]
    better = paired_difference(good, base, n_draws=DRAWS, names=("good", "base"))[0]["metrics"]
    worse = paired_difference(base, good, n_draws=DRAWS, names=("base", "good"))[0]["metrics"]
    for k in better:
        assert better[k]["verdict"] == "better" and better[k]["high"] < 0, k
        assert worse[k]["verdict"] == "worse" and worse[k]["low"] > 0, k
    assert better["eer"]["low"] == pytest.approx(-worse["eer"]["high"])


def test_pure_noise_difference_at_small_trial_counts_is_not_resolved():
    small = trial_list(seed=5, n_speakers=N_SPK, per_speaker=6)
    a = [run(1.0, s, trials=small, noise_seed=100 + s) for s in (1, 2, 3)]
    b = [run(1.0, s, trials=small, noise_seed=200 + s) for s in (1, 2, 3)]
    d = paired_difference(a, b, n_draws=DRAWS, names=("a", "b"))[0]["metrics"]
    assert d["eer"]["difference"] != 0.0  # the runs do differ...
    for m in d.values():
        assert m["verdict"] == "not resolved" and m["low"] < 0 < m["high"]  # ...but not resolvably


def test_seed_pooling_two_identical_runs_give_the_one_run_interval():
    one = run(1.2, 1)
    twin = TrialScores("twin", one.speakers, one.conditions, {"seed": 2})
    rows = SplitComparison({"one": [one], "two": [one, twin]}, n_draws=DRAWS).summary()
    assert rows[0]["system"] == "one"
    assert rows[1]["metrics"]["eer"]["per_run"] == rows[0]["metrics"]["eer"]["per_run"] * 2
    assert rows[0]["metrics"] == {k: {**v, "per_run": v["per_run"][:1]} for k, v in rows[1]["metrics"].items()}


def test_seed_pooling_spreads_the_interval_over_unlike_seeds():
    # Seed 1 nearly perfect, seed 2 poor: the mean over resampled seeds ranges from one to the other.
    rows = summarise({"s": [run(6.0, 1), run(0.5, 2)]}, n_draws=DRAWS)[0]["metrics"]["eer"]
    solo = [summarise({"s": [r]}, n_draws=DRAWS)[0]["metrics"]["eer"] for r in (run(6.0, 1), run(0.5, 2))]
    assert rows["low"] <= solo[0]["high"] and rows["high"] >= solo[1]["low"]
    assert rows["high"] - rows["low"] > 4 * max(s["high"] - s["low"] for s in solo)


def test_seeds_pair_by_seed_or_resample_independently():
    base = [run(1.0, s) for s in (1, 2, 3)]
    # Same metric as the base run of the same seed (scores scaled: a monotone map)...
    scaled = [TrialScores(f"x{r.seed}", r.speakers, {c: (2 * s, y, g) for c, (s, y, g) in r.conditions.items()},
                          {"seed": r.seed}) for r in base]
    paired = paired_difference(scaled, base, n_draws=DRAWS)[0]
    assert paired["paired_seeds"] and (paired["metrics"]["eer"]["low"], paired["metrics"]["eer"]["high"]) == (0, 0)
    # ...but with other seed labels nothing pairs them: the seed-to-seed spread shows.
    relabelled = [TrialScores(r.path, r.speakers, r.conditions, {"seed": r.seed + 10}) for r in scaled]
    unpaired = paired_difference(relabelled, base, n_draws=DRAWS)[0]
    assert not unpaired["paired_seeds"]
    m = unpaired["metrics"]["eer"]
    assert m["difference"] == 0.0 and m["low"] < 0 < m["high"] and m["verdict"] == "not resolved"


def test_same_seed_gives_the_same_report_and_another_seed_another():
    systems = {"a": [run(1.0, 1), run(1.0, 2)], "b": [run(1.4, 1), run(1.4, 2)]}
    first = SplitComparison(systems, n_draws=DRAWS, seed=3)
    again = SplitComparison(systems, n_draws=DRAWS, seed=3)
    other = SplitComparison(systems, n_draws=DRAWS, seed=4)
    assert first.summary() == again.summary() and first.difference("b", "a") == again.difference("b", "a")
    assert first.summary() != other.summary()


def test_identical_conditions_are_reported_once():
    r1, r2 = run(1.0, 1, ("all", "neutral_neutral")), run(1.0, 2, ("all", "neutral_neutral"))
    dup = [TrialScores(r.path, r.speakers, {**r.conditions, "test_neutral": r.conditions["neutral_neutral"]},
                       r.meta) for r in (r1, r2)]
    cmp = SplitComparison({"s": dup}, n_draws=20)
    assert cmp.conditions == ["all", "neutral_neutral"] and cmp.aliases == {"neutral_neutral": ["test_neutral"]}
    # Equal in one run only: not merged.
    dup[1].conditions["test_neutral"] = r2.conditions["all"]
    assert SplitComparison({"s": dup}, n_draws=20).aliases == {}


def test_resolution_reports_steps_and_half_widths():
    cmp = SplitComparison({"a": [run(1.0, 1)], "b": [run(1.5, 1)], "c": [run(2.0, 1)]}, n_draws=DRAWS)
    diffs = cmp.difference("b", "a") + cmp.difference("c", "a")
    res = cmp.resolution(diffs)[0]
    labels = run(1.0, 1).conditions["all"][1]
    n_t, n_n = int(labels.sum()), int(labels.size - labels.sum())
    assert (res["n_target"], res["n_nontarget"], res["n_speakers"]) == (n_t, n_n, N_SPK)
    assert res["steps"]["eer"] == (1 / (2 * n_t), 1 / (2 * n_n))
    assert res["steps"]["min_dcf_p0.01"][1] == pytest.approx(99 / n_n)
    widths = [d["metrics"]["eer"]["half_width"] for d in diffs]
    assert res["half_width"]["eer"] == pytest.approx(np.median(widths))


# --------------------------------------------------------------------------------- bad input


def test_runs_of_one_system_on_different_trial_lists():
    other = trial_list(seed=9)
    with pytest.raises(ComparisonError, match=r"system 's': run-1.0-1 and odd scored condition 'all' on different "
                                              r"trial lists \(labels differ"):
        SplitComparison({"s": [run(1.0, 1), run(1.0, 2, trials=other, name="odd")]})


@pytest.mark.parametrize(
    "change, what",
    [("labels", r"labels differ at \d+ of 1200 trials"), ("speakers", "test speakers differ"),
     ("length", "1199 vs 1200 trials")],
)
def test_paired_difference_needs_the_same_trial_list(change, what):
    labels, speakers = trial_list()
    if change == "labels":
        labels = trial_list(seed=9)[0]
    elif change == "speakers":
        speakers = speakers[::-1].copy()
    else:
        labels, speakers = labels[:-1], speakers[:-1]
    cmp = SplitComparison({"a": [run(1.0, 1)], "b": [run(1.0, 1, trials=(labels, speakers), name="b1")]}, n_draws=20)
    with pytest.raises(ComparisonError, match=f"systems 'b' and 'a': b1 and run-1.0-1 scored condition 'all' "
                                              f"on different trial lists \\({what}\\)"):
        cmp.difference("b", "a")


@pytest.mark.parametrize(
    "systems, message",
    [
        ({"s": [run(1.0, 1), run(1.0, 1)]}, "system 's': run run-1.0-1 is given twice"),
        ({"s": [run(1.0, 1), run(1.0, 1, name="again")]}, "system 's': seed 1 in runs run-1.0-1 and again"),
        ({"s": [run(1.0, 1), run(1.0, 2, ("all", "sad"))]}, "system 's': run run-1.0-2 has conditions"),
        ({"s": []}, "system 's': no run"),
        ({}, "no system"),
    ],
)
def test_bad_systems_are_named(systems, message):
    with pytest.raises(ComparisonError, match=message):
        SplitComparison(systems, n_draws=20)


def test_other_speakers_and_unknown_conditions_or_systems():
    r = run(1.0, 1)
    fewer = TrialScores("fewer", r.speakers[:-1] + ("zzz",), r.conditions, {"seed": 1})
    with pytest.raises(ComparisonError, match="fewer and run-1.0-1 have different test speakers"):
        SplitComparison({"a": [r], "b": [fewer]})
    with pytest.raises(ComparisonError, match="run run-1.0-1 has no condition 'sad'"):
        SplitComparison({"a": [r]}, conditions=["sad"])
    with pytest.raises(ComparisonError, match="no system 'nope'"):
        SplitComparison({"a": [r]}, n_draws=20).difference("nope", "a")


# ------------------------------------------------------------------------ report and command


def test_command_line_writes_markdown_and_json(tmp_path, capsys):
    runs = {name: [write_run(tmp_path / f"{name}{s}", run(sep, s, ("all", "sad"))) for s in (1, 2)]
            for name, sep in (("base", 1.0), ("good", 3.0))}
    for name, folders in runs.items():  # a second split, with one condition
        for s, folder in zip((1, 2), folders):
            write_run(folder, run(1.0 if name == "base" else 3.0, s, ("all",), noise_seed=50 + s), split="ood")
    out = str(tmp_path / "cmp.md")
    argv = ["--reference", "base", "--split", "eval", "ood", "--out", out, "--draws", "200",
            "--title", "Good (two seeds) vs base"]
    argv += [f"{n}={','.join(r)}" for n, r in runs.items()]
    assert main(argv) == 0
    text = open(out).read()
    # the recorded command line is a shell command giving the same arguments back
    command = re.search(r"^Command: `(.*)`$", text, re.M).group(1)
    assert shlex.split(command) == ["python", "-m", "speechbrain_ext.compare", *argv]
    assert "## Split `eval` (30 test speakers)" in text and "### Paired differences vs base" in text
    assert "## Split `ood` (30 test speakers)" in text
    assert text.count("**better**") == 9 and "| `sad` | good | 2 |" in text
    report = json.load(open(str(tmp_path / "cmp.json")))
    split = report["splits"]["eval"]
    assert [d["metrics"]["eer"]["verdict"] for d in split["differences"]] == ["better", "better"]
    assert split["systems"]["base"]["seeds"] == [1, 2] and report["settings"]["n_draws"] == 200
    # The report is reproducible from its own numbers.
    assert render_markdown(report, "Good (two seeds) vs base") + "\n" == text


def test_command_line_errors_name_the_problem(tmp_path, capsys):
    good = write_run(tmp_path / "good", run(1.0, 1))
    cases = [
        (["a=" + good, "a=" + good], "system 'a' is given twice"),
        (["a=" + str(tmp_path / "missing")], "missing: no such folder"),
        (["a=" + good, "--split", "ood"], "no per-trial scores of split 'ood'"),
        (["a=" + good, "--reference", "b"], "reference 'b' is not one of the systems"),
        (["just-a-folder"], "expected SYSTEM=RUN_DIR"),
    ]
    for argv, message in cases:
        assert main(argv + ["--out", str(tmp_path / "r.md"), "--draws", "20"]) == 1
        assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r.md")


def test_seed_falls_back_to_hyperparams_and_report_lists_undefined_draws(tmp_path):
    folder = tmp_path / "exp"
    r = run(1.0, 1)
    write_run(folder, TrialScores(r.path, r.speakers, r.conditions, {}))
    (folder / "hyperparams.yaml").write_text("seed: 1986\n__set_seed: !apply:torch.manual_seed [!ref <seed>]\n")
    # Only speaker 0 has targets: most draws have none.
    labels = np.zeros(N_SPK * 4, np.int8)
    labels[:2] = 1
    sparse = TrialScores("sparse", r.speakers, {"all": (np.arange(labels.size, dtype=float), labels,
                                                        np.repeat(np.arange(N_SPK), 4).astype(np.int32))})
    cmp = SplitComparison({"hp": [str(folder)]}, n_draws=20)
    assert cmp.systems["hp"][0].seed == 1986
    rep = build_report([SplitComparison({"sparse": [sparse]}, n_draws=50)])
    row = rep["splits"]["eval"]["summary"][0]
    assert 0 < row["undefined_draws"] < 50
    assert f"{row['undefined_draws']} draw(s) without a target" in render_markdown(rep)


def test_single_runs_are_labelled_and_compared_over_speakers_only():
    rep = build_report([SplitComparison({"a": [run(1.0, 1)], "b": [run(1.0, 2)]}, n_draws=50)], reference="a")
    d = rep["splits"]["eval"]["differences"][0]
    assert d["n_runs"] == [1, 1] and not d["paired_seeds"]
    assert "| `all` | b | 1 run each |" in render_markdown(rep)


# ------------------------------------------------------------------------------- LLRs


def llr_run(slope, seed, llr_seed=None):
    """A run whose ``calibrated`` LLRs are ``slope * (score - 1)`` of its scores (slope 2 over-confident)."""
    scores = run(2.0, seed, noise_seed=llr_seed)
    llrs = {"calibrated": {c: slope * (s.astype(np.float64) - 1.0) for c, (s, _, _) in scores.conditions.items()}}
    return TrialScores(f"llr-{slope}-{seed}", scores.speakers, scores.conditions, scores.meta, llrs)


def test_llr_comparison_reports_cllr_and_actual_dcf_with_paired_differences():
    from speechbrain_ext.calibration_metrics import actual_dcf, cllr

    systems = {"right": [llr_run(1.0, s) for s in (1, 2, 3)], "overconfident": [llr_run(4.0, s) for s in (1, 2, 3)]}
    cmp = SplitComparison(systems, n_draws=DRAWS, measure="calibrated")
    assert cmp.keys == ["cllr", "act_dcf_p0.01", "act_dcf_p0.05"]
    rows = {r["system"]: r["metrics"] for r in cmp.summary()}
    for name, runs in systems.items():  # the point value is the mean over runs of the full-list metric
        expected = np.mean([cllr(r.llr("calibrated", "all"), r.conditions["all"][1]) for r in runs])
        assert rows[name]["cllr"]["value"] == pytest.approx(expected, rel=1e-9)
        expected = np.mean([actual_dcf(r.llr("calibrated", "all"), r.conditions["all"][1], 0.01) for r in runs])
        assert rows[name]["act_dcf_p0.01"]["value"] == pytest.approx(expected, rel=1e-9)
    (d,) = cmp.difference("overconfident", "right")
    assert d["paired_seeds"] and d["metrics"]["cllr"]["verdict"] == "worse"
    report = build_report([cmp], reference="right")
    assert report["settings"]["measure"] == "calibrated"
    text = render_markdown(report)
    assert "Δ Cllr" in text and "actDCF(0.01)" in text and "`calibrated` LLRs" in text
    assert report["splits"]["eval"]["resolution"][0]["steps"] == {}


def test_an_llr_comparison_of_a_run_without_llrs_names_the_run():
    with pytest.raises(ComparisonError, match=r"system 'b': run run-2.0-1 holds no 'calibrated' LLRs \(has: none"):
        SplitComparison({"a": [llr_run(1.0, 1)], "b": [run(2.0, 1)]}, n_draws=DRAWS, measure="calibrated")


def test_the_command_line_compares_llrs(tmp_path):
    folders = []
    for slope, seed in ((1.0, 1), (4.0, 1)):
        r = llr_run(slope, seed)
        names = np.asarray(r.speakers)
        path = scores_path(str(tmp_path / f"s{slope}" / "report"), "eval")
        save_trial_scores(path, {c: (s, y) for c, (s, y, _) in r.conditions.items()},
                          {c: names[g] for c, (_, _, g) in r.conditions.items()}, r.meta, r.llrs)
        folders.append(str(tmp_path / f"s{slope}"))
    out = tmp_path / "cmp.md"
    assert main([f"right={folders[0]}", f"over={folders[1]}", "--reference", "right", "--llr", "calibrated",
                 "--draws", "100", "--out", str(out)]) == 0
    assert "| `all` | over |" in out.read_text() and "Cllr" in out.read_text()
    assert main([f"right={folders[0]}", "--llr", "plain", "--draws", "100", "--out", str(out)]) == 1
