"""ResNet34 speaker encoder (WeSpeaker's topology) behind SpeechBrain's encoder interface.

The topology is WeSpeaker's ``ResNet34`` (``wespeaker/models/resnet.py`` at commit
``dfa7419``; Wang et al., "WeSpeaker", ICASSP 2023, arXiv:2210.17016): a 2-D ResNet
over (frequency, time) with the basic block of He et al. (CVPR 2016, Fig. 5 left)
and the 34-layer depths ``[3, 4, 6, 3]`` of their Table 1, but a 3x3 stem without
max-pooling, ``m_channels = 32`` (32, 64, 128, 256 channels), frequency and time both
halved at the first block of stages 2-4, temporal statistics pooling (TSTP: mean and
unbiased standard deviation of every (channel, frequency) row) and one linear layer
to a 256-dimensional embedding. At 80 mel bands this is 6,634,336 parameters, the
count of WeSpeaker's own class (6.63 M in examples/cnceleb/v2/README.md and examples/voxceleb/v2/README.md).

The parameter names are WeSpeaker's (``conv1``, ``bn1``, ``layer1.0.conv1``...,
``seg_1``), so its ``ResNet34`` checkpoints load with ``load_state_dict``.

What differs is padding: every convolution sees zeros past an utterance's last real
frame, exactly the zero padding it sees when the utterance is alone, and the
statistics skip the padded frames. An utterance's embedding therefore does not depend
on the longer utterances of its batch (given frame-exact lengths, see
:mod:`speechbrain_ext.batching`).
"""

import torch
from torch import nn
from torch.nn import functional as F

from speechbrain_ext.encoders.masking import downsample_mask, masked_mean_std, time_mask

__all__ = ["BasicBlock", "ResNet", "ResNet34"]

#: WeSpeaker's TSTP adds this to the variance before the square root.
TSTP_EPS = 1e-7


def _conv3x3(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection, zero in the padded frames.

    Arguments
    ---------
    in_channels : int
    channels : int
        Output channels.
    stride : int
        Stride of the first convolution and of the projection shortcut (both axes).

    Example
    -------
    >>> block = BasicBlock(4, 8, stride=2).eval()
    >>> x, mask = torch.randn(2, 4, 6, 10), torch.ones(2, 10)
    >>> y, out_mask = block(x, mask)
    >>> y.shape, out_mask.shape
    (torch.Size([2, 8, 3, 5]), torch.Size([2, 5]))
    """

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        self.stride = stride
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x, mask):
        """``x [B, C, F, T]`` (zero in padded frames), ``mask [B, T]`` → ``(y, mask of y)``."""
        if self.stride != 1:
            mask = downsample_mask(mask)
        m = mask[:, None, None, :]
        # BatchNorm's shift makes padded frames non-zero: re-zero them before each convolution
        out = F.relu(self.bn1(self.conv1(x))) * m
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return F.relu(out) * m, mask


class ResNet(nn.Module):
    """WeSpeaker's ResNet with basic blocks: ``[B, T, n_mels]`` → embeddings ``[B, 1, D]``.

    Arguments
    ---------
    input_size : int
        Mel bands (frequency bins of the input).
    channels : int
        Channels of the stem and of stage 1 (WeSpeaker's ``m_channels``); stage ``k``
        has ``channels * 2 ** (k - 1)``.
    lin_neurons : int
        Embedding dimension.
    num_blocks : sequence of int
        Basic blocks per stage.

    Example
    -------
    >>> enc = ResNet(input_size=16, channels=4, lin_neurons=8, num_blocks=(1, 1, 1, 1)).eval()
    >>> enc(torch.randn(3, 50, 16), torch.tensor([1.0, 0.6, 0.3])).shape
    torch.Size([3, 1, 8])
    """

    def __init__(self, input_size=80, channels=32, lin_neurons=256, num_blocks=(3, 4, 6, 3)):
        super().__init__()
        if len(num_blocks) != 4:
            raise ValueError(f"num_blocks must name 4 stages, got {list(num_blocks)}")
        self.conv1 = _conv3x3(1, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        in_channels, freq = channels, input_size
        for stage, blocks in enumerate(num_blocks, start=1):
            width, stride = channels * 2 ** (stage - 1), 1 if stage == 1 else 2
            layer = nn.ModuleList()
            for i in range(blocks):
                layer.append(BasicBlock(in_channels, width, stride if i == 0 else 1))
                in_channels = width
            self.add_module(f"layer{stage}", layer)
            freq = (freq + stride - 1) // stride  # a stride-2 3x3 convolution with padding 1: ceil(F / 2)
        self.stats_dim = in_channels * freq
        self.seg_1 = nn.Linear(self.stats_dim * 2, lin_neurons)

    def forward(self, x, lengths=None):
        """``x [B, T, n_mels]``, relative ``lengths [B]`` → embeddings ``[B, 1, D]``."""
        if lengths is None:
            lengths = torch.ones(x.shape[0], device=x.device)
        x = x.transpose(1, 2).unsqueeze(1)  # [B, 1, F, T]
        mask = time_mask(x, lengths)
        x = x * mask[:, None, None, :]
        x = F.relu(self.bn1(self.conv1(x))) * mask[:, None, None, :]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                x, mask = block(x, mask)
        mean, std = masked_mean_std(x, mask, unbiased=True, eps=TSTP_EPS)
        stats = torch.cat([mean.flatten(1), std.flatten(1)], dim=1)
        return self.seg_1(stats).unsqueeze(1)


class ResNet34(ResNet):
    """ResNet34 (WeSpeaker): basic blocks ``[3, 4, 6, 3]``, TSTP pooling, 256-d embeddings.

    Arguments
    ---------
    input_size : int
        Mel bands (80 in WeSpeaker's recipes).
    channels : int
        Width of the first stage (32 in WeSpeaker: 6.63 M parameters at 80 bands).
    lin_neurons : int
        Embedding dimension (256 in WeSpeaker).

    Example
    -------
    >>> sum(p.numel() for p in ResNet34().parameters())
    6634336
    >>> tiny = ResNet34(input_size=24, channels=4, lin_neurons=16).eval()
    >>> tiny(torch.randn(2, 40, 24), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 1, 16])
    """

    def __init__(self, input_size=80, channels=32, lin_neurons=256):
        super().__init__(input_size, channels, lin_neurons, num_blocks=(3, 4, 6, 3))
