"""The suite section ``calibration`` on fabricated runs with known answers; LLRs in score files."""

import os

import numpy as np
import pytest
from suite_fixtures import make_suite

from speechbrain_ext.calibration_metrics import actual_dcf, cllr, min_cllr
from speechbrain_ext.compare import SplitComparison
from speechbrain_ext.suite import load_suite
from speechbrain_ext.suite_calibration import CalibrationSection, calibration_rows
from speechbrain_ext.suite_report import ReportContext, RunResult, resolve_sections
from speechbrain_ext.trial_scores import TrialScoresError, load_trial_scores, save_trial_scores, scores_path

N_SPEAKERS, PER_SPEAKER, TARGETS = 30, 20, 5


def trials(seed, split, condition):
    """Raw cosine-like scores (targets N(0.4, 0.3²), non-targets N(0, 0.3²)) and their exact LLRs."""
    rng = np.random.default_rng([seed, sum(map(ord, split + condition))])
    labels = np.tile([1] * TARGETS + [0] * (PER_SPEAKER - TARGETS), N_SPEAKERS).astype(np.int8)
    scores = rng.normal(size=labels.size) * 0.3 + 0.4 * labels
    llr = (0.8 * scores - 0.16) / 0.18  # log N(s; 0.4, 0.3²) / N(s; 0, 0.3²): perfectly calibrated
    return scores, labels, llr


def fabricate(suite, spec):
    """Score files of every run in ``spec`` ({(row, seed): LLR kinds}), the plain LLRs equal to the configured."""
    speakers = [f"S{i:02d}" for i in np.repeat(np.arange(N_SPEAKERS), PER_SPEAKER)]
    runs = {}
    for row in suite.rows:
        for seed in suite.seeds:
            folder = suite.run_folder(row, seed)
            kinds = spec.get((row.name, seed))
            runs[(row.name, seed)] = RunResult(row, seed, folder, None if kinds is None else {"epoch": 1})
            for split in suite.splits if kinds is not None else ():
                data = {c: trials(seed, split, c) for c in suite.conditions}
                llrs = {kind: {c: d[2] for c, d in data.items()} for kind in kinds}
                save_trial_scores(scores_path(os.path.join(folder, "report"), split),
                                  {c: d[:2] for c, d in data.items()}, {c: speakers for c in data},
                                  {"seed": seed}, llrs)
    return runs


@pytest.fixture
def suite(tmp_path):
    return load_suite(make_suite(tmp_path, rows=("base", "good", "same"), seeds=(1, 2),
                                 sections=["calibration"]))


def test_known_answers_better_and_not_resolved(suite):
    runs = fabricate(suite, {("base", 1): ("calibrated", "plain"), ("base", 2): ("calibrated", "plain"),
                             ("good", 1): ("calibrated",), ("good", 2): ("calibrated",)})
    systems = {row: [r.folder for (name, _), r in runs.items() if name == row] for row in ("base", "good")}
    comparison = SplitComparison(systems, "eval", n_draws=300, p_targets=(0.01,))
    rows = {(r["system"], r["condition"]): r for r in calibration_rows(comparison, ["all"])}
    assert sorted(rows) == [("base", "all"), ("good", "all")]
    base = rows[("base", "all")]
    data = [trials(seed, "eval", "all") for seed in (1, 2)]
    # point values: means over seeds of calibration_metrics on the whole lists
    assert base["metrics"]["cllr"]["value"] == pytest.approx(np.mean([cllr(d[2], d[1]) for d in data]), rel=1e-12)
    assert base["metrics"]["raw_cllr"]["value"] == pytest.approx(np.mean([cllr(d[0], d[1]) for d in data]))
    assert base["metrics"]["act_dcf"]["value"] == np.mean([actual_dcf(d[2], d[1], 0.01) for d in data])
    assert base["metrics"]["min_cllr"]["value"] == pytest.approx(np.mean([min_cllr(d[2], d[1]) for d in data]))
    for key in ("raw_cllr", "cllr", "plain_cllr", "act_dcf", "min_dcf", "act_min_ratio"):
        m = base["metrics"][key]
        assert m["low"] <= m["value"] <= m["high"], key
    assert base["metrics"]["act_min_ratio"]["low"] >= 1.0  # actual DCF is never below minDCF of the same LLRs
    # the exact LLRs are far better calibrated than cosine scores read as LLRs: resolved
    diff = base["differences"]["calibrated_raw_cllr"]
    assert diff["difference"] == pytest.approx(np.mean([cllr(d[2], d[1]) - cllr(d[0], d[1]) for d in data]))
    d = diff
    assert d["difference"] < -0.1 and d["high"] < 0 and d["verdict"] == "better"
    # plain LLRs equal to the configured ones: a zero difference, not resolved
    for key in ("quality_plain_cllr", "quality_plain_act_dcf"):
        d = base["differences"][key]
        assert (d["difference"], d["low"], d["high"], d["verdict"]) == (0.0, 0.0, 0.0, "not resolved")
    good = rows[("good", "all")]
    assert not good["plain"] and "plain_cllr" not in good["metrics"] and list(good["differences"]) == [
        "calibrated_raw_cllr"]


def test_a_noisy_difference_is_not_resolved(tmp_path):
    suite = load_suite(make_suite(tmp_path, rows=("base",), seeds=(1,)))
    runs = fabricate(suite, {("base", 1): ("calibrated", "plain")})
    path = scores_path(os.path.join(runs[("base", 1)].folder, "report"), "eval")
    ts = load_trial_scores(path)
    rng = np.random.default_rng(0)
    llrs = {"calibrated": {}, "plain": {}}
    for cond, (scores, _, _) in ts.conditions.items():
        llrs["calibrated"][cond] = ts.llr("calibrated", cond)
        # a tiny symmetric change of a few trials: the Cllr moves, but not beyond the speaker noise
        llrs["plain"][cond] = ts.llr("calibrated", cond) + rng.normal(size=scores.size) * 0.01
    speakers = {c: np.asarray(ts.speakers)[v[2]] for c, v in ts.conditions.items()}
    save_trial_scores(path, {c: v[:2] for c, v in ts.conditions.items()}, speakers, ts.meta, llrs)
    comparison = SplitComparison({"base": [path]}, "eval", n_draws=300, p_targets=(0.01,))
    row = calibration_rows(comparison, ["all"])[0]
    d = row["differences"]["quality_plain_cllr"]
    assert d["difference"] != 0.0 and d["low"] < 0 < d["high"] and d["verdict"] == "not resolved"


def test_the_section_renders_and_lists_runs_without_llrs(suite, tmp_path):
    runs = fabricate(suite, {("base", 1): ("calibrated", "plain"), ("base", 2): ("calibrated", "plain"),
                             ("good", 1): ("calibrated",), ("good", 2): (), ("same", 1): ()})
    (section,) = resolve_sections(suite)
    assert isinstance(section, CalibrationSection)
    text = "\n".join(section.render(ReportContext(suite, runs, {}, str(tmp_path), "report")))
    assert "### Split `eval`" in text and "### Split `ood`" in text
    assert "| system base | `all` | 2 |" in text and "| system good | `all` | 1 |" in text
    assert "= configured (no quality measures)" in text and "**better**" in text and "**not resolved**" in text
    # the run of "good" without LLRs and every run of "same" are named with the command that adds them
    assert "- system good, seed 2 (eval, ood): `python " in text and "--seed 2" in text
    assert "- system same, seed 1 (eval, ood)" in text
    assert "Rows skipped (no run with LLRs): system same." in text
    assert "| system same |" not in text


def test_non_finite_or_misshapen_llrs_name_the_file_and_condition(tmp_path):
    path = scores_path(str(tmp_path), "eval")
    scores, labels, llr = trials(1, "eval", "all")
    speakers = {"all": ["A", "B"] * (labels.size // 2)}
    bad = llr.copy()
    bad[3] = np.nan
    with pytest.raises(TrialScoresError, match=r"eval.npz: condition 'all': 'plain' LLRs: 1 non-finite LLR"):
        save_trial_scores(path, {"all": (scores, labels)}, speakers, llrs={"plain": {"all": bad}})
    with pytest.raises(TrialScoresError, match=r"eval.npz: condition 'all': 'calibrated' LLRs: shape \(599,\) for "
                                               r"600 scores"):
        save_trial_scores(path, {"all": (scores, labels)}, speakers, llrs={"calibrated": {"all": llr[:-1]}})
    with pytest.raises(TrialScoresError, match="unknown LLR kind 'qmf'"):
        save_trial_scores(path, {"all": (scores, labels)}, speakers, llrs={"qmf": {"all": llr}})
    # a file damaged after writing: the loader names the file and the condition
    save_trial_scores(path, {"all": (scores, labels)}, speakers, llrs={"calibrated": {"all": llr}})
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    for value, message in ((np.where(np.arange(llr.size) == 7, np.inf, llr), "1 non-finite LLR"),
                           (llr[:10], r"shape \(10,\) for 600 scores")):
        np.savez(path, **{**arrays, "llr/calibrated/all": value})
        with pytest.raises(TrialScoresError, match=rf"{path}: condition 'all': 'calibrated' LLRs: {message}"):
            load_trial_scores(path)
    np.savez(path, **{k: v for k, v in arrays.items() if k != "llr/calibrated/all"})
    with pytest.raises(TrialScoresError, match=r"no key 'llr/calibrated/all'"):
        load_trial_scores(path)


def test_files_without_llrs_still_load(tmp_path):
    path = scores_path(str(tmp_path), "eval")
    scores, labels, _ = trials(1, "eval", "all")
    save_trial_scores(path, {"all": (scores, labels)}, {"all": ["A"] * labels.size})
    with np.load(path) as data:
        assert "llr_kinds" not in data.files
    ts = load_trial_scores(path)
    assert ts.llr_kinds == () and ts.llrs == {}
    with pytest.raises(TrialScoresError, match="no 'calibrated' LLRs of condition 'all' \\(has: none\\)"):
        ts.llr("calibrated", "all")
