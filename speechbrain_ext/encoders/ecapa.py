"""SpeechBrain's ECAPA-TDNN run so that padding cannot reach an utterance's real frames.

``ECAPA_TDNN`` pads every convolution with ``reflect`` at the end of the *batch*
tensor, so the last ``(kernel - 1) / 2 * dilation`` real frames of a shorter utterance
see its padding instead of its own reflection (SpeechBrain #1374); through the first
TDNN and the dilated Res2Net chains the effect reaches about 65 frames in. The
masks of the SE blocks and of the attentive pooling come from relative lengths and are
right only when those lengths count exactly the utterance's frames.

:class:`PaddingInvariantECAPA` runs the same layers of the same ``ECAPA_TDNN``
instance (shared, not copied), but every convolution with a kernel wider than one
frame is padded per utterance by :func:`~speechbrain_ext.encoders.masking.reflect_pad`,
and the SE and pooling statistics skip padded frames. Each real frame then sees exactly
what it sees when its utterance is alone; with frame-exact lengths
(:mod:`speechbrain_ext.batching`) the embedding does not depend on the batch. The
module is trace-safe (ONNX, TorchScript): batch and time axes stay symbolic.
"""

import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, SERes2NetBlock, TDNNBlock
from torch import nn
from torch.nn import functional as F

from speechbrain_ext.encoders.masking import masked_mean, reflect_pad, time_mask, valid_frames

__all__ = ["PaddingInvariantECAPA"]


def _check_conv(conv, where):
    if conv.stride != 1 or conv.padding != "same" or conv.padding_mode != "reflect":
        raise ValueError(
            f"PaddingInvariantECAPA: {where} is a convolution with stride {conv.stride}, padding "
            f"{conv.padding!r}, padding_mode {conv.padding_mode!r}; only ECAPA_TDNN's stride-1 'same' "
            "'reflect' convolutions are reproduced"
        )


class PaddingInvariantECAPA(nn.Module):
    """The layers of a trained ``ECAPA_TDNN`` with per-utterance padding and masks.

    Arguments
    ---------
    ecapa : speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
        The encoder to run (shared, not copied).

    Example
    -------
    >>> enc = ECAPA_TDNN(20, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8).eval()
    >>> x = torch.randn(2, 60, 20)
    >>> alone = enc(x[1:, :40], torch.ones(1))
    >>> naive = enc(x, torch.tensor([1.0, 40 / 60]))[1:]
    >>> batched = PaddingInvariantECAPA(enc)(x, torch.tensor([1.0, 39.75 / 60]))[1:]
    >>> bool((naive - alone).abs().max() > 1e-3), bool((batched - alone).abs().max() < 1e-5)
    (True, True)
    """

    def __init__(self, ecapa):
        super().__init__()
        if not isinstance(ecapa, ECAPA_TDNN):
            raise TypeError(f"PaddingInvariantECAPA runs an ECAPA_TDNN, got {type(ecapa).__name__}")
        for i, block in enumerate(ecapa.blocks):
            if isinstance(block, TDNNBlock):
                _check_conv(block.conv, f"blocks[{i}].conv")
            elif isinstance(block, SERes2NetBlock):
                for j, sub in enumerate(block.res2net_block.blocks):
                    _check_conv(sub.conv, f"blocks[{i}].res2net_block.blocks[{j}].conv")
            else:
                raise TypeError(f"PaddingInvariantECAPA: unsupported ECAPA block {type(block).__name__}")
        _check_conv(ecapa.mfa.conv, "mfa.conv")
        self.ecapa = ecapa

    @staticmethod
    def _tdnn(block, x, counts):
        conv = block.conv
        pad = conv.dilation * (conv.kernel_size - 1) // 2
        y = conv.conv(reflect_pad(x, counts, pad)) if pad else conv(x)
        return block.dropout(block.norm(block.activation(y)))

    @classmethod
    def _res2net(cls, res2net, x, counts):
        outputs = []
        for i, x_i in enumerate(torch.chunk(x, res2net.scale, dim=1)):
            if i == 0:
                y_i = x_i
            else:
                y_i = cls._tdnn(res2net.blocks[i - 1], x_i if i == 1 else x_i + y_i, counts)
            outputs.append(y_i)
        return torch.cat(outputs, dim=1)

    @classmethod
    def _se_res2net(cls, block, x, mask, counts):
        residual = block.shortcut(x) if block.shortcut else x
        x = cls._tdnn(block.tdnn1, x, counts)
        x = cls._res2net(block.res2net_block, x, counts)
        x = cls._tdnn(block.tdnn2, x, counts)
        se = block.se_block
        s = masked_mean(x, mask).unsqueeze(2)
        s = se.sigmoid(se.conv2(se.relu(se.conv1(s))))
        return s * x + residual

    @classmethod
    def _pool(cls, asp, x, mask, counts):
        m = mask.unsqueeze(1)

        def stats(weights):
            mean = (weights * x).sum(2)
            std = torch.sqrt((weights * (x - mean.unsqueeze(2)).pow(2)).sum(2).clamp(asp.eps))
            return mean, std

        attn = x
        if asp.global_context:
            mean, std = stats(m / m.sum(dim=2, keepdim=True))
            attn = torch.cat([x, mean.unsqueeze(2).expand_as(x), std.unsqueeze(2).expand_as(x)], dim=1)
        attn = asp.conv(asp.tanh(cls._tdnn(asp.tdnn, attn, counts)))
        attn = F.softmax(attn.masked_fill(m == 0, float("-inf")), dim=2)
        mean, std = stats(attn)
        return torch.cat((mean, std), dim=1).unsqueeze(2)

    def forward(self, x, lengths=None):
        """``x [B, T, F]``, relative ``lengths [B]`` (``t < lengths * T`` is real) → ``[B, 1, D]``."""
        enc = self.ecapa
        if lengths is None:
            lengths = torch.ones(x.shape[0], device=x.device)
        x = x.transpose(1, 2)
        mask = time_mask(x, lengths)
        counts = valid_frames(mask)
        outputs = []
        for block in enc.blocks:
            if isinstance(block, TDNNBlock):
                x = self._tdnn(block, x, counts)
            else:
                x = self._se_res2net(block, x, mask, counts)
            outputs.append(x)
        x = self._tdnn(enc.mfa, torch.cat(outputs[1:], dim=1), counts)
        x = self._pool(enc.asp, x, mask, counts)
        x = enc.fc(enc.asp_bn(x))
        return x.transpose(1, 2)
