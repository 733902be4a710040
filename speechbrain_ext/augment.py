"""The augmentation plug-ins (methods.md B; speed perturbation), under one short name for YAML.

Recipes write ``!new:speechbrain_ext.augment.CopyPaste``, ``...SpeakerSpeedPerturb`` and
``!new:speechbrain_ext.augment.EnergyEmotionMask``; each lives in the module of its
concern and is re-exported here:

- :class:`~speechbrain_ext.copypaste.CopyPaste` (:mod:`speechbrain_ext.copypaste`):
  the parallel waveform ``x'`` from crops of ``x`` and a partner ``u`` (B.1);
- :class:`~speechbrain_ext.partners.CopyPastePartners` and :data:`PARTNER_KINDS`
  (:mod:`speechbrain_ext.partners`): the partner of each utterance, and the
  data-pipeline step that builds ``x'`` (B.1);
- :class:`~speechbrain_ext.masking.EnergyEmotionMask` and :data:`SELECTIONS`
  (:mod:`speechbrain_ext.masking`): emotion-aware masking of the features (B.3);
- :class:`~speechbrain_ext.speed_perturb.SpeakerSpeedPerturb`
  (:mod:`speechbrain_ext.speed_perturb`): speed perturbation, each perturbed speaker a
  new class (WeSpeaker's and 3D-Speaker's; not of either paper).

Example
-------
>>> from speechbrain_ext import copypaste, masking
>>> CopyPaste is copypaste.CopyPaste and EnergyEmotionMask is masking.EnergyEmotionMask
True
"""

from speechbrain_ext.copypaste import CopyPaste
from speechbrain_ext.masking import SELECTIONS, EnergyEmotionMask
from speechbrain_ext.partners import PARTNER_KINDS, CopyPastePartners
from speechbrain_ext.speed_perturb import SpeakerSpeedPerturb

__all__ = ["PARTNER_KINDS", "SELECTIONS", "CopyPaste", "CopyPastePartners", "EnergyEmotionMask", "SpeakerSpeedPerturb"]
