"""CAM++ speaker encoder (3D-Speaker's topology) behind SpeechBrain's encoder interface.

The topology is 3D-Speaker's ``CAMPPlus`` (``speakerlab/models/campplus/DTDNN.py`` and
``layers.py`` at commit ``09e7806``; Wang et al., "CAM++: A Fast and Efficient Network
for Speaker Verification Using Context-Aware Masking", Interspeech 2023,
arXiv:2303.00332, Fig. 1):

* **FCM front-end**: a 2-D residual stem over (frequency, time) -- a 3x3 convolution,
  two stages of two basic blocks that halve the frequency axis only, a 3x3 convolution
  with stride (2, 1) -- whose channels x frequency rows become the 1-D input;
* **D-TDNN backbone**: a TDNN layer (kernel 5, stride 2 in time, ``init_channels``
  128), three densely connected blocks of 12, 24 and 16 layers (kernel 3, dilations
  1, 2, 2; growth rate 32, bottleneck ``bn_size * growth_rate`` = 128), each followed
  by a transition layer halving the channels;
* **context-aware masking** in every D-TDNN layer: the local output is multiplied by a
  sigmoid mask predicted from the utterance mean plus the mean of the frame's
  100-frame segment (multi-granularity pooling);
* statistics pooling (mean and unbiased standard deviation) and a dense layer with a
  non-affine BatchNorm to the embedding.

At 80 mel bands and 512-dimensional embeddings (3D-Speaker's VoxCeleb and CN-Celeb
configurations) this is 7,176,224 parameters, the 7.18 M of egs/cnceleb/sv-cam++/README.md;
with 192-dimensional embeddings (its "common" model) 6,848,544. The parameter names are
3D-Speaker's (``head.*``, ``xvector.block1.tdnnd1.*``...), so its checkpoints load with
``load_state_dict``.

What differs is padding: every convolution sees zeros past an utterance's last real
frame (as alone), the utterance and segment means and the final statistics skip padded
frames, so an utterance's embedding does not depend on the rest of its batch.
"""

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from speechbrain_ext.encoders.masking import downsample_mask, masked_mean, masked_mean_std, time_mask

__all__ = ["CAMLayer", "CAMPPlus", "FCM"]


def _bn_relu(channels):
    return nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(channels), relu=nn.ReLU()))


class _FreqResBlock(nn.Module):
    """FCM's basic block: stride on the frequency axis only, time length unchanged."""

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x, m):
        out = F.relu(self.bn1(self.conv1(x))) * m
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return F.relu(out) * m


class FCM(nn.Module):
    """CAM++'s front-end: ``[B, F, T]`` features → ``[B, channels * F / 8, T]``.

    Arguments
    ---------
    input_size : int
        Frequency bins.
    channels : int
        Convolution channels (32 in CAM++).
    num_blocks : tuple of int
        Basic blocks of the two frequency-halving stages.

    Example
    -------
    >>> fcm = FCM(input_size=16, channels=4).eval()
    >>> fcm(torch.randn(2, 16, 30), torch.ones(2, 30)).shape, fcm.out_channels
    (torch.Size([2, 8, 30]), 8)
    """

    def __init__(self, input_size=80, channels=32, num_blocks=(2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        for stage, blocks in enumerate(num_blocks, start=1):
            layer = nn.ModuleList(_FreqResBlock(channels, channels, 2 if i == 0 else 1) for i in range(blocks))
            self.add_module(f"layer{stage}", layer)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        freq = input_size
        for _ in range(len(num_blocks) + 1):
            freq = (freq + 1) // 2  # stride-2 3x3 convolution with padding 1
        self.out_channels = channels * freq

    def forward(self, x, mask):
        """``x [B, F, T]``, ``mask [B, T]`` → ``[B, C * F', T]`` (zero in padded frames)."""
        m = mask[:, None, None, :]
        x = x.unsqueeze(1) * m
        out = F.relu(self.bn1(self.conv1(x))) * m
        for layer in (self.layer1, self.layer2):
            for block in layer:
                out = block(out, m)
        out = F.relu(self.bn2(self.conv2(out))) * m
        return out.flatten(1, 2)


class CAMLayer(nn.Module):
    """Context-aware masking: a local TDNN output gated by utterance- and segment-level context.

    Arguments
    ---------
    bn_channels : int
        Input (bottleneck) channels.
    out_channels : int
        Output channels (the growth rate).
    kernel_size, dilation : int
        Of the local convolution (zero "same" padding).
    reduction : int
        Channel reduction of the context network.
    seg_len : int
        Frames of a pooling segment (100 in CAM++).

    Example
    -------
    >>> cam = CAMLayer(8, 4, kernel_size=3, dilation=2, seg_len=5)
    >>> cam(torch.randn(2, 8, 12), torch.ones(2, 12)).shape
    torch.Size([2, 4, 12])
    """

    def __init__(self, bn_channels, out_channels, kernel_size=3, dilation=1, reduction=2, seg_len=100):
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation,
                                      bias=False)
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)
        self.seg_len = seg_len

    def _segment_means(self, x, mask):
        """Mean of the real frames of each ``seg_len`` segment, repeated over its frames."""
        m = mask.unsqueeze(1)
        # The pooling divisor cancels in the ratio, so the last, partial segment averages
        # its real frames whatever the runtime's ceil-mode divisor convention.
        sums = F.avg_pool1d(x * m, self.seg_len, self.seg_len, ceil_mode=True)
        counts = F.avg_pool1d(m, self.seg_len, self.seg_len, ceil_mode=True)
        seg = sums / counts.clamp(min=1.0 / self.seg_len)
        seg = seg.unsqueeze(3).expand(-1, -1, -1, self.seg_len).flatten(2)
        return seg[:, :, : x.shape[2]]

    def forward(self, x, mask):
        """``x [B, C, T]``, ``mask [B, T]`` → ``[B, out_channels, T]``."""
        x = x * mask.unsqueeze(1)
        y = self.linear_local(x)
        context = masked_mean(x, mask).unsqueeze(2) + self._segment_means(x, mask)
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return y * gate


class _DenseLayer(nn.Module):
    """BN-ReLU, 1x1 bottleneck, BN-ReLU, CAM layer (3D-Speaker's ``CAMDenseTDNNLayer``)."""

    def __init__(self, in_channels, growth_rate, bn_channels, kernel_size, dilation, seg_len):
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_channels)
        self.cam_layer = CAMLayer(bn_channels, growth_rate, kernel_size, dilation, seg_len=seg_len)

    def forward(self, x, mask):
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))), mask)


class _Transit(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.linear(self.nonlinear(x))


class _TDNN(nn.Module):
    """Kernel-5, stride-2 TDNN layer after the front-end."""

    def __init__(self, in_channels, out_channels, kernel_size=5, stride=2):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                                padding=(kernel_size - 1) // 2, bias=False)
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x):
        return self.nonlinear(self.linear(x))


class _Dense(nn.Module):
    """Statistics → embedding: 1x1 convolution and a BatchNorm without affine parameters."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(out_channels, affine=False)))

    def forward(self, x):
        return self.nonlinear(self.linear(x.unsqueeze(2))).squeeze(2)


class _DenseBlock(nn.Module):
    """Densely connected D-TDNN layers: each one's output is appended to its input."""

    def __init__(self, num_layers, in_channels, growth_rate, bn_channels, kernel_size, dilation, seg_len):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(in_channels + i * growth_rate, growth_rate, bn_channels, kernel_size, dilation, seg_len)
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x, mask):
        for layer in self.children():
            x = torch.cat([x, layer(x, mask)], dim=1)
        return x


class CAMPPlus(nn.Module):
    """CAM++ (3D-Speaker): ``[B, T, n_mels]`` features → embeddings ``[B, 1, D]``.

    Arguments
    ---------
    input_size : int
        Mel bands (80 in 3D-Speaker).
    lin_neurons : int
        Embedding dimension (512 in 3D-Speaker's VoxCeleb and CN-Celeb recipes, 192 in
        its "common" model).
    growth_rate : int
        Channels each D-TDNN layer adds (32).
    bn_size : int
        Bottleneck width in growth rates (4).
    init_channels : int
        Channels of the TDNN layer after the front-end (128).
    head_channels : int
        Channels of the FCM front-end (32).
    block_layers : tuple of int
        D-TDNN layers per block ((12, 24, 16)).
    block_dilations : tuple of int
        Dilation of each block's local convolutions ((1, 2, 2)).
    kernel_size : int
        Kernel of the local convolutions (3).
    seg_len : int
        Frames of a context-pooling segment (100).

    Example
    -------
    >>> sum(p.numel() for p in CAMPPlus().parameters())
    7176224
    >>> tiny = CAMPPlus(input_size=16, lin_neurons=8, growth_rate=4, init_channels=8, head_channels=4,
    ...                 block_layers=(1, 1, 1)).eval()
    >>> tiny(torch.randn(2, 30, 16), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 1, 8])
    """

    def __init__(self, input_size=80, lin_neurons=512, growth_rate=32, bn_size=4, init_channels=128,
                 head_channels=32, block_layers=(12, 24, 16), block_dilations=(1, 2, 2), kernel_size=3,
                 seg_len=100):
        super().__init__()
        if len(block_layers) != len(block_dilations):
            raise ValueError(f"block_layers {list(block_layers)} and block_dilations {list(block_dilations)} "
                             "must have the same length")
        self.head = FCM(input_size, head_channels)
        xvector = OrderedDict(tdnn=_TDNN(self.head.out_channels, init_channels))
        channels = init_channels
        for i, (layers, dilation) in enumerate(zip(block_layers, block_dilations), start=1):
            xvector[f"block{i}"] = _DenseBlock(layers, channels, growth_rate, bn_size * growth_rate, kernel_size,
                                               dilation, seg_len)
            channels += layers * growth_rate
            xvector[f"transit{i}"] = _Transit(channels, channels // 2)
            channels //= 2
        xvector["out_nonlinear"] = _bn_relu(channels)
        xvector["dense"] = _Dense(channels * 2, lin_neurons)
        self.xvector = nn.ModuleDict(xvector)
        self.n_blocks = len(block_layers)
        for module in self.modules():
            if isinstance(module, nn.Conv1d | nn.Linear):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x, lengths=None):
        """``x [B, T, n_mels]``, relative ``lengths [B]`` → embeddings ``[B, 1, D]``."""
        if lengths is None:
            lengths = torch.ones(x.shape[0], device=x.device)
        x = x.transpose(1, 2)  # [B, F, T]
        mask = time_mask(x, lengths)
        x = self.head(x, mask)
        net = self.xvector
        x = net["tdnn"](x)
        mask = downsample_mask(mask)
        for i in range(1, self.n_blocks + 1):
            x = net[f"transit{i}"](net[f"block{i}"](x, mask))
        x = net["out_nonlinear"](x)
        mean, std = masked_mean_std(x, mask, unbiased=True)
        return net["dense"](torch.cat([mean, std], dim=1)).unsqueeze(1)
