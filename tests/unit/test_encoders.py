"""ResNet34 and CAM++ encoders: sizes, SpeechBrain interface, lengths, losses, ONNX parity."""

import warnings

import numpy as np
import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

from speechbrain_ext.balancing import MGDABalancer
from speechbrain_ext.encoders import CAMPPlus, ResNet, ResNet34
from speechbrain_ext.encoders.ecapa import PaddingInvariantECAPA
from speechbrain_ext.losses import AngularMarginSupConLoss, ClassAwareAttention

N_MELS = 24


def tiny_resnet():
    return ResNet34(input_size=N_MELS, channels=4, lin_neurons=16)


def tiny_campp():
    return CAMPPlus(input_size=N_MELS, lin_neurons=16, growth_rate=4, init_channels=16, head_channels=4,
                    block_layers=(2, 2, 2), seg_len=20)


def tiny_ecapa():
    return PaddingInvariantECAPA(ECAPA_TDNN(N_MELS, channels=[16, 16, 16, 16, 48], lin_neurons=16,
                                            attention_channels=8))


ENCODERS = {"resnet34": tiny_resnet, "campp": tiny_campp, "ecapa": tiny_ecapa}


def perturb_batchnorm(module, seed=0):
    """Trained-looking BatchNorm statistics: eval mode is then not an identity."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            if m.affine:
                m.bias.data.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))
    return module.eval()


def test_full_size_parameter_counts_match_the_published_models():
    # WeSpeaker ResNet34 (feat_dim 80, embed_dim 256): 6,634,336 (6.63 M in its tables);
    # 3D-Speaker CAMPPlus (feat_dim 80): 7,176,224 at 512-d (7.18 M), 6,848,544 at 192-d.
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ResNet34()) == 6_634_336
    assert count(CAMPPlus()) == 7_176_224
    assert count(CAMPPlus(lin_neurons=192)) == 6_848_544


def test_parameter_names_are_the_published_ones():
    # So WeSpeaker / 3D-Speaker checkpoints load with load_state_dict.
    resnet = set(ResNet34().state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer2.0.shortcut.0.weight", "layer3.5.conv2.weight",
            "layer4.2.bn2.bias", "seg_1.weight", "seg_1.bias"} <= resnet
    campp = set(CAMPPlus().state_dict())
    assert {"head.conv1.weight", "head.layer2.1.bn2.running_mean", "head.layer1.0.shortcut.0.weight",
            "xvector.tdnn.linear.weight", "xvector.tdnn.nonlinear.batchnorm.weight",
            "xvector.block3.tdnnd16.cam_layer.linear2.bias", "xvector.block2.tdnnd24.nonlinear1.batchnorm.weight",
            "xvector.transit1.linear.weight", "xvector.out_nonlinear.batchnorm.running_var",
            "xvector.dense.linear.weight", "xvector.dense.nonlinear.batchnorm.running_mean"} <= campp
    assert not any(k.startswith("xvector.block4") for k in campp)


@pytest.mark.parametrize("name", ["resnet34", "campp"])
def test_interface_is_ecapas_and_classifier_takes_it(name):
    torch.manual_seed(0)
    enc = ENCODERS[name]().eval()
    x = torch.randn(3, 57, N_MELS)
    out = enc(x, torch.ones(3))
    assert out.shape == (3, 1, 16)
    assert torch.equal(enc(x), out)  # lengths=None means full length
    logits = Classifier(input_size=16, out_neurons=5)(out)
    assert logits.shape == (3, 1, 5)


@pytest.mark.parametrize("name", ["resnet34", "campp"])
def test_padding_frames_are_excluded_whatever_they_hold(name):
    torch.manual_seed(0)
    enc = perturb_batchnorm(ENCODERS[name]())
    x = torch.randn(2, 80, N_MELS)
    n = 47
    alone = enc(x[1:, :n], torch.ones(1))
    for fill in (0.0, 1e3, -50.0):
        padded = x.clone()
        padded[1, n:] = fill
        lengths = torch.tensor([1.0, (n - 0.25) / 80])
        assert (enc(padded, lengths)[1] - alone[0]).abs().max() < 1e-5
    # and the lengths matter: counting the padding changes the embedding
    padded[1, n:] = 1e3
    assert (enc(padded, torch.ones(2))[1] - alone[0]).abs().max() > 1e-2


@pytest.mark.parametrize("name", ["resnet34", "campp"])
def test_papers_losses_and_balancer_train_the_encoder_unchanged(name):
    torch.manual_seed(0)
    enc = ENCODERS[name]().train()
    classifier = Classifier(input_size=16, out_neurons=4)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    emb = enc(torch.randn(8, 40, N_MELS), torch.ones(8))
    logits = classifier(emb)
    aam = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30))(logits, labels.unsqueeze(1))
    weights = ClassAwareAttention(scale=30)(logits, labels)
    contrastive = AngularMarginSupConLoss(margin=0.2, temperature=0.07)(emb, labels, negative_weights=weights)
    total, stats = MGDABalancer()({"aam": aam, "contrastive": contrastive}, emb)
    total.backward()
    assert 0.0 <= stats["alpha"] <= 1.0
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_bad_sizes_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="num_blocks must name 4 stages"):
        ResNet(num_blocks=(3, 4, 6))
    with pytest.raises(ValueError, match="block_layers .* and block_dilations"):
        CAMPPlus(block_layers=(12, 24), block_dilations=(1, 2, 2))
    with pytest.raises(TypeError, match="runs an ECAPA_TDNN"):
        PaddingInvariantECAPA(ResNet34())


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_onnx_export_with_dynamic_batch_and_time_matches_torch(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    enc = perturb_batchnorm(ENCODERS[name]())
    path = str(tmp_path / f"{name}.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            enc, (torch.randn(2, 70, N_MELS), torch.tensor([1.0, 0.6])), path, dynamo=False, opset_version=17,
            input_names=["feats", "lengths"], output_names=["embeddings"],
            dynamic_axes={"feats": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "embeddings": {0: "batch"}},
        )
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    worst = 0.0
    for frames, lengths in ((53, [1.0, 0.7, 0.45]), (131, [1.0, 0.33])):  # two lengths, padded batches
        feats, lengths = torch.randn(len(lengths), frames, N_MELS), torch.tensor(lengths)
        with torch.no_grad():
            ref = enc(feats, lengths).numpy()
        out = session.run(None, {"feats": feats.numpy(), "lengths": lengths.numpy()})[0]
        assert out.shape == ref.shape
        worst = max(worst, float(np.abs(out - ref).max()))
    assert worst <= 1e-4, worst
