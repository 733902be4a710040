"""Speaker encoders beyond ECAPA-TDNN, with SpeechBrain's interface and length masks.

``forward(x [B, T, n_mels], lengths [B] relative) -> [B, 1, D]`` like
``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN``, so the recipes' ``Classifier``,
losses and balancers take them unchanged. Padded frames are excluded from every
statistic and seen as zeros by every convolution, so an utterance's embedding does
not depend on the longer utterances it is batched with (:mod:`speechbrain_ext.batching`).

YAML: ``!new:speechbrain_ext.encoders.ResNet34`` (WeSpeaker) and
``!new:speechbrain_ext.encoders.CAMPPlus`` (3D-Speaker); see
``recipes/shared_hparams/resnet34.yaml`` and ``campp.yaml``.

Example
-------
>>> enc = ResNet34(input_size=24, channels=4, lin_neurons=16).eval()
>>> enc(torch.randn(2, 40, 24), torch.tensor([1.0, 0.7])).shape
torch.Size([2, 1, 16])
"""

import torch  # noqa: F401  (the doctest above)

from speechbrain_ext.encoders.campp import CAMPPlus
from speechbrain_ext.encoders.resnet import ResNet, ResNet34

__all__ = ["CAMPPlus", "ResNet", "ResNet34"]
