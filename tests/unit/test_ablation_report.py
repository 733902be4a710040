"""bench/ablation.py's emotion report on fabricated runs: the valid-split sections compute what they say."""

import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("ablation", os.path.join(ROOT, "bench", "ablation.py"))
ablation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ablation)

PAPER = "ecapa_aam_copypaste_cos_em"
#: selected validation EER (%) per run and seed (seeds 1, 2)
VALID = {
    "ecapa_aam": (10.0, 12.0),
    PAPER: (13.0, 14.0),
    f"{PAPER}@em_ratio=0.1": (9.0, 13.0),
    "ecapa_aam@crop_seconds=3": (8.0, 8.0),
    f"{PAPER}@crop_seconds=3": (11.0, 12.0),
}


def fabricate(root):
    for name, values in VALID.items():
        for seed, valid in zip((1, 2), values):
            run = root / name / f"seed{seed}"
            (run / "report").mkdir(parents=True)
            conditions = {c: {"eer": valid / 200, "min_dcf": 0.5, "n_target": 1, "n_nontarget": 3}
                          for c in ("all", "neutral_emotional")}
            (run / "report" / "metrics.json").write_text(
                json.dumps({"conditions": conditions, "valid_EER": valid, "epoch": 2}))
            (run / "train_log.txt").write_text(
                f"epoch: 1, lr: 1.00e-03 - train seconds: 10.0 - valid EER: {valid + 5}\n"
                f"epoch: 2, lr: 1.00e-03 - train seconds: 10.0 - valid EER: {valid}\n")
            probe = {"none": {"all": {"eer": valid / 100}}, "highest@0.2": {"all": {"eer": 2 * valid / 100}},
                     "random@0.2": {"all": {"eer": 1.1 * valid / 100}}}
            shift = {"shift": 0.1, "separation": 0.5, "ratio": 0.2}
            (run / "report" / "em_probe.json").write_text(json.dumps({"results": probe, "emotion_shift": shift}))


@pytest.fixture
def report(tmp_path):
    fabricate(tmp_path / "runs")
    out = tmp_path / "ablation_emotion.md"
    ablation.main(["--suite", "emotion", "--rows", "ecapa_aam", PAPER, "--seeds", "1", "2", "--report-only",
                   "--variants", f"{PAPER}:em_ratio=0.1", "ecapa_aam:crop_seconds=3", f"{PAPER}:crop_seconds=3",
                   "--runs-root", str(tmp_path / "runs"), "--out", str(out)])
    return out.read_text()


def section(text, title):
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_variants_are_paired_with_their_row_and_matched_baseline(report):
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section(report, "Variants against").splitlines()
            if line.startswith("| +") or line.startswith("| baseline")}
    ratio = rows["+ CopyPaste + L_cos + EM (paper) [em_ratio=0.1]"]
    # vs its row: 9-13, 13-14 -> -4, -1; vs the baseline: 9-10, 13-12 -> -1, +1
    assert "| -2.50 ± 2.12 (lower in 2 of 2) | 0.00 ± 1.41 (lower in 1 of 2) |" in ratio
    crop = rows["+ CopyPaste + L_cos + EM (paper) [crop_seconds=3]"]
    # matched baseline: the baseline with 3 s crops, 11-8, 12-8 -> +3, +4
    assert "3.50 ± 0.71 (lower in 0 of 2) (baseline (ECAPA + AAM) [crop_seconds=3])" in crop


def test_probe_table_reads_each_run(report):
    probe = section(report, "Valid-split probe")
    line = next(row for row in probe.splitlines() if row.startswith("| baseline (ECAPA + AAM) |"))
    # no mask 10, 12 -> 11 ± 1.41; highest 0.2 doubles it; the shift columns
    assert line.startswith("| baseline (ECAPA + AAM) | 11.00 ± 1.41 | 22.00 ± 2.83 | 12.10 ± 1.56 |")
    assert line.endswith("| 0.100 ± 0.000 | 0.500 ± 0.000 | 0.200 ± 0.000 |")


def test_variants_never_enter_the_evaluation_tables(report):
    assert "em_ratio=0.1" not in section(report, "EER (%) on the evaluation trials")
    assert "## Findings" in report  # bench/ablation_notes/emotion.md
