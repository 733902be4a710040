"""The large-margin fine-tuning system files (*_lm.yaml): structure, one stage per recipe, the 20 % budget."""

import functools
import glob
import os

import pytest
import ruamel.yaml

from speechbrain_ext.hparams import compose_hparams, yaml_tag

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPES = ("SynthEmo", "CNCeleb", "VoxCeleb", "EmoSpeech")
LM_FILES = sorted(glob.glob(os.path.join(ROOT, "recipes", "*", "hparams", "*_lm.yaml")))
FRAGMENT = "../../shared_hparams/large_margin.yaml"
#: Keys that define a recipe's fine-tuning stage: every *_lm.yaml of a recipe has the same values.
STAGE_KEYS = ("crop_seconds", "number_of_epochs", "lr", "lr_final", "lm_final_margin", "lm_ramp_epochs", "lm_ramp")
BUDGET = 0.20  # issue 14: the fine-tuning stage <= 20 % of the main training


@functools.cache
def composed(path):
    return ruamel.yaml.YAML().load(compose_hparams(path))


def source_of(path):
    with open(path) as f:
        base = ruamel.yaml.YAML().load(f)["base"]
    return os.path.join(os.path.dirname(path), base[0]), list(base)


def test_every_recipe_has_lm_systems_for_the_loss_combinations():
    names = {os.path.relpath(p, os.path.join(ROOT, "recipes")) for p in LM_FILES}
    for recipe in RECIPES:
        assert f"{recipe}/hparams/ecapa_aam_lm.yaml" in names
    for name in ("SynthEmo/hparams/ecapa_aam_amsupcon_caa_mgda_lm.yaml",
                 "SynthEmo/hparams/ecapa_aam_copypaste_cos_em_lm.yaml",
                 "CNCeleb/hparams/ecapa_aam_amsupcon_caa_mgda_lm.yaml",
                 "VoxCeleb/hparams/ecapa_aam_amsupcon_caa_mgda_lm.yaml",
                 "EmoSpeech/hparams/ecapa_aam_copypaste_cos_em_lm.yaml"):
        assert name in names


@pytest.mark.parametrize("path", LM_FILES, ids=os.path.basename)
def test_an_lm_file_is_its_source_system_plus_the_shared_stage(path):
    source, base = source_of(path)
    assert base == [os.path.basename(source), FRAGMENT]
    lm, main = composed(path), composed(source)
    assert lm["system"] == f"{main['system']}_lm"  # its own output folder: the source run is only read
    assert yaml_tag(lm["lm_margin_scheduler"]) == "!new:speechbrain_ext.margin.MarginScheduler"
    assert yaml_tag(lm["margin_scheduler"]) == "!ref" and lm["margin_scheduler"].value == "<lm_margin_scheduler>"
    assert main["margin_scheduler"] is None
    assert yaml_tag(lm["init_from"]) == "!PLACEHOLDER"
    # everything but the stage's own keys is the source system's: same model, losses, balancer, data
    stage_only = set(STAGE_KEYS) | {"system", "init_from", "__init_from", "margin_scheduler", "lm_margin_scheduler",
                                    "lm_contrastive_loss", "lm_contrastive_final_margin", "pretrained_encoder"}
    for key in set(main) - stage_only:
        assert ruamel_text(lm[key]) == ruamel_text(main[key]), key
    if "contrastive_loss" in main:  # the contrastive margin is named (logged), held at its trained value
        assert lm["lm_contrastive_final_margin"].value == "<supcon_margin>"


def ruamel_text(node):
    import io

    stream = io.StringIO()
    ruamel.yaml.YAML().dump({"v": node}, stream)
    return stream.getvalue()


@pytest.mark.parametrize("recipe", RECIPES)
def test_one_stage_per_recipe(recipe):
    files = [p for p in LM_FILES if f"{os.sep}{recipe}{os.sep}" in p]
    stages = {os.path.basename(p): tuple(ruamel_text(composed(p)[k]) for k in STAGE_KEYS) for p in files}
    assert len(set(stages.values())) == 1, stages


@pytest.mark.parametrize("path", LM_FILES, ids=lambda p: os.path.relpath(p, os.path.join(ROOT, "recipes")))
def test_the_stage_is_at_most_a_fifth_of_the_main_training(path):
    """Training audio (epochs x crop: every epoch visits every utterance once) of the stage vs its source run's."""
    lm, main = composed(path), composed(source_of(path)[0])
    for hp in (lm, main):
        assert isinstance(hp["number_of_epochs"], int) and isinstance(hp["crop_seconds"], float)
    assert lm["crop_seconds"] > main["crop_seconds"]  # longer crops
    assert lm["lr"] < main["lr"] and lm["lm_final_margin"] > main["aam_margin"]
    ratio = lm["number_of_epochs"] * lm["crop_seconds"] / (main["number_of_epochs"] * main["crop_seconds"])
    assert ratio <= BUDGET + 1e-12, ratio
