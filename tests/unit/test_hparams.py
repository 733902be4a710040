import os

import pytest

from speechbrain_ext.hparams import HparamsError, compose_hparams, load_hparams

RECIPES = os.path.join(os.path.dirname(__file__), "..", "..", "recipes")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def test_base_chain_merges_nested_and_resolves_refs_across_files(tmp_path):
    write(tmp_path / "a.yaml", "lr: 1\nopt:\n  x: !ref <lr>\n  y: 2\n")
    write(tmp_path / "b.yaml", "base: a.yaml\nopt:\n  y: 3\n")
    write(tmp_path / "c.yaml", "base: b.yaml\nlr: 5\nextra: !ref <opt[y]>\n")
    hparams, text = load_hparams(str(tmp_path / "c.yaml"))
    assert hparams["opt"] == {"x": 5, "y": 3}
    assert hparams["extra"] == 3
    assert "base:" not in text


def test_list_of_bases_applies_in_order(tmp_path):
    write(tmp_path / "a.yaml", "k: 1\nm: 1\n")
    write(tmp_path / "f.yaml", "k: 2\n")
    write(tmp_path / "s.yaml", "base: [a.yaml, f.yaml]\nm: 3\n")
    hparams, _ = load_hparams(str(tmp_path / "s.yaml"))
    assert hparams == {"k": 2, "m": 3}


def test_unknown_override_names_key_and_file(tmp_path):
    path = write(tmp_path / "s.yaml", "number_of_epochs: 1\n")
    with pytest.raises(HparamsError, match="'number_of_epoch'.*s.yaml.*number_of_epochs"):
        load_hparams(str(path), "number_of_epoch: 2")


def test_override_applies_to_refs(tmp_path):
    path = write(tmp_path / "s.yaml", "a: 1\nb: !ref <a> + 1\n")
    hparams, text = load_hparams(str(path), {"a": 4})
    assert hparams["b"] == 5 and "a: 4" in text


def test_missing_base_and_cycles_are_named(tmp_path):
    write(tmp_path / "s.yaml", "base: nope.yaml\n")
    with pytest.raises(HparamsError, match="nope.yaml.*base of"):
        compose_hparams(str(tmp_path / "s.yaml"))
    write(tmp_path / "x.yaml", "base: y.yaml\n")
    write(tmp_path / "y.yaml", "base: x.yaml\n")
    with pytest.raises(HparamsError, match="circular"):
        compose_hparams(str(tmp_path / "x.yaml"))


def test_invalid_yaml_and_non_mapping_are_named(tmp_path):
    write(tmp_path / "bad.yaml", "a: [1,\n")
    with pytest.raises(HparamsError, match="bad.yaml: not valid YAML"):
        compose_hparams(str(tmp_path / "bad.yaml"))
    write(tmp_path / "list.yaml", "- 1\n")
    with pytest.raises(HparamsError, match="mapping"):
        compose_hparams(str(tmp_path / "list.yaml"))


def test_construction_error_names_file(tmp_path):
    path = write(tmp_path / "s.yaml", "x: !new:collections.OrderedDict\n  - not_a_pair\n")
    with pytest.raises(HparamsError, match="s.yaml: could not build"):
        load_hparams(str(path))


@pytest.mark.parametrize(
    "path",
    sorted(
        os.path.join(root, n)
        for root, _, names in os.walk(RECIPES)
        for n in names
        if n.endswith(".yaml") and os.sep + "hparams" in root
    ),
)
def test_every_recipe_hparams_file_composes(path):
    text = compose_hparams(path)
    assert "system:" in text and "brain_class:" in text
