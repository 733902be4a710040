"""The rule that picks the system `make demo` publishes: validation splits only."""

import json

import pytest

from speechbrain_ext.system_choice import SystemChoiceError, choose_system, validation_eers


def test_lowest_mean_validation_eer_wins():
    v = {"base": {"valid": 6.0, "ood_valid": 12.0}, "a": {"valid": 5.0, "ood_valid": 11.5},
         "b": {"valid": 5.5, "ood_valid": 10.0}}
    choice = choose_system(v, "base")
    assert choice.system == "b"
    assert choice.scores == {"base": 9.0, "a": 8.25, "b": 7.75}
    assert choice.ranking() == ["b", "a", "base"] and not choice.excluded


def test_in_generator_win_with_an_ood_valid_loss_is_not_published():
    # "a" has the best valid and the best mean, but loses to the baseline on ood_valid.
    v = {"base": {"valid": 6.0, "ood_valid": 12.0}, "a": {"valid": 1.0, "ood_valid": 12.5},
         "b": {"valid": 5.9, "ood_valid": 11.9}}
    choice = choose_system(v, "base")
    assert choice.system == "b"
    assert list(choice.excluded) == ["a"] and "ood_valid EER 12.50 %" in choice.excluded["a"]
    # Without the guard the mean alone would publish "a": the guard is what decides here.
    assert choose_system(v, "base", guard=None).system == "a"


def test_the_baseline_is_published_when_nothing_beats_it_fairly():
    v = {"base": {"valid": 6.0, "ood_valid": 12.0}, "a": {"valid": 1.0, "ood_valid": 13.0}}
    assert choose_system(v, "base").system == "base"


def test_ties_go_to_the_reference_then_to_the_order_given():
    tie = {"a": {"valid": 5.0, "ood_valid": 10.0}, "base": {"valid": 6.0, "ood_valid": 9.0},
           "b": {"valid": 4.0, "ood_valid": 11.0}}
    assert choose_system(tie, "base", guard=None).system == "base"
    no_ref_tie = {"base": {"valid": 9.0, "ood_valid": 9.0}, "b": {"valid": 4.0, "ood_valid": 8.0},
                  "a": {"valid": 5.0, "ood_valid": 7.0}}
    assert choose_system(no_ref_tie, "base").system == "b"


def test_eval_numbers_are_never_read(tmp_path):
    # A metrics.json whose eval numbers would reverse the choice: only "valid" counts.
    def run(name, valid, ood_valid, eval_eer):
        path = tmp_path / name / "metrics.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"conditions": {"all": {"eer": eval_eer}}, "valid": {
            "valid": valid, "ood_valid": ood_valid}, "splits": {"ood": {"conditions": {"all": {"eer": eval_eer}}}}}))
        return str(path)

    runs = {"base": run("base", 6.0, 12.0, 0.01), "a": run("a", 5.0, 11.0, 0.40)}
    choice = choose_system({s: validation_eers(p) for s, p in runs.items()}, "base")
    assert choice.system == "a"


@pytest.mark.parametrize("valid, message", [
    ({"valid": 4.0}, "no validation EER of split 'ood_valid' (has: valid)"),
    ({}, "no validation EER of split 'valid' (has: none)"),
    ({"valid": 4.0, "ood_valid": None}, "no validation EER of split 'ood_valid'"),
])
def test_a_run_without_validation_eers_is_named(valid, message):
    with pytest.raises(SystemChoiceError, match="runs/b: " + message.replace("(", r"\(").replace(")", r"\)")):
        validation_eers({"conditions": {"all": {}}, "valid": valid}, name="runs/b")


def test_inconsistent_inputs_are_refused():
    with pytest.raises(SystemChoiceError, match="reference 'x' is not one of"):
        choose_system({"a": {"valid": 1.0, "ood_valid": 1.0}}, "x")
    with pytest.raises(SystemChoiceError, match="system 'b': validation splits"):
        choose_system({"a": {"valid": 1.0, "ood_valid": 1.0}, "b": {"valid": 1.0}}, "a")
    with pytest.raises(SystemChoiceError, match="lack the guard"):
        choose_system({"a": {"valid": 1.0}}, "a")
