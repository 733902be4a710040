"""speechbrain_ext.augment: the short YAML-facing namespace of the augmentation plug-ins."""

import warnings

from hyperpyyaml import load_hyperpyyaml

from speechbrain_ext import augment, copypaste, masking, partners, speed_perturb


def test_yaml_names_resolve_to_the_modules_of_their_concern_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        built = load_hyperpyyaml(
            "cp: !new:speechbrain_ext.augment.CopyPaste\n"
            "  crossfade: 0\n"
            "em: !new:speechbrain_ext.augment.EnergyEmotionMask\n"
            "  select: random\n"
            "selections: !name:speechbrain_ext.augment.SELECTIONS\n"
            "sp: !new:speechbrain_ext.augment.SpeakerSpeedPerturb\n"
            "  n_speakers: 3\n"
        )
    assert type(built["cp"]) is copypaste.CopyPaste and built["cp"].crossfade == 0
    assert type(built["em"]) is masking.EnergyEmotionMask and built["em"].select == "random"
    assert built["selections"] is masking.SELECTIONS
    assert type(built["sp"]) is speed_perturb.SpeakerSpeedPerturb and built["sp"].n_classes == 9
    assert augment.CopyPastePartners is partners.CopyPastePartners
    assert augment.PARTNER_KINDS is partners.PARTNER_KINDS and augment.SELECTIONS is masking.SELECTIONS
