"""Mixed precision (issue 14 item 5): the custom losses, balancers and masking on float16/bfloat16.

Each module is checked two ways:

- **exactness**: on half inputs it returns exactly what the float32 computation returns on
  the same (rounded) values, and under autocast exactly what it returns without: this
  fails if a computation runs in half precision or a custom function loses its autocast
  declaration;
- **tolerance** against float32 inputs (the error a user of ``--precision`` sees, all of
  it from rounding the inputs): relative error of a loss <= 1e-3, cosine similarity of
  the gradients >= 0.999, and stated bounds in units of the dtype's unit roundoff ``u``
  (2^-9 for bfloat16, 2^-11 for float16) where the error is not averaged away.
"""

from types import SimpleNamespace

import pytest
import torch
from test_emotion_brain import first_batch, make_brain

from speechbrain_ext.balancing import FixedWeights, GroupedBalancer, MGDABalancer, min_norm_coefficient
from speechbrain_ext.losses import AngularMarginSupConLoss, ClassAwareAttention, ParallelCosineLoss
from speechbrain_ext.masking import EnergyEmotionMask

HALF = [torch.bfloat16, torch.float16]
#: Unit roundoff: half the distance from 1 to the next representable number.
UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-9, torch.float16: 2.0**-11}
LOSS_RTOL = 1e-3
GRAD_COSINE = 0.999


def speaker_batch(seed=0, n_speakers=16, per_speaker=4, dim=192):
    """Embeddings clustered by speaker (norm ~70, as an encoder gives), labels, class weights."""
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(n_speakers, dim, generator=gen)
    noise = torch.randn(n_speakers * per_speaker, dim, generator=gen)
    emb = 5 * (centers.repeat_interleave(per_speaker, 0) + 0.6 * noise)
    labels = torch.arange(n_speakers).repeat_interleave(per_speaker)
    weights = torch.nn.functional.normalize(centers + torch.randn(n_speakers, dim, generator=gen), dim=1)
    return emb, labels, weights


def cosine_logits(emb, weights):
    return torch.nn.functional.normalize(emb, dim=1) @ weights.T


def grad_cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0))


def loss_and_grad(fn, x, *args):
    x = x.clone().requires_grad_(True)
    loss = fn(x, *args)
    loss.backward()
    return loss, x.grad


# ---------------------------------------------------------------------------- AM-SupCon


@pytest.mark.parametrize("dtype", HALF)
def test_am_supcon_on_half_embeddings_is_float32_of_the_rounded_values(dtype):
    emb, labels, w = speaker_batch()
    caa = ClassAwareAttention()(cosine_logits(emb, w), labels)
    loss_fn = AngularMarginSupConLoss(margin=0.2, temperature=0.07)
    loss, grad = loss_and_grad(loss_fn, emb.to(dtype), labels, caa)
    ref, ref_grad = loss_and_grad(loss_fn, emb.to(dtype).float(), labels, caa)
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    assert torch.equal(loss, ref)
    assert torch.equal(grad, ref_grad.to(dtype))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("seed", [0, 1])
def test_am_supcon_on_half_embeddings_is_within_tolerance_of_float32(dtype, seed):
    # tau = 0.07: logits up to 1/0.07 = 14.3, exp(14.3) = 1.6e6 > float16's 65504.
    emb, labels, w = speaker_batch(seed)
    logits = cosine_logits(emb, w)
    loss_fn = AngularMarginSupConLoss(margin=0.2, temperature=0.07)
    ref, ref_grad = loss_and_grad(loss_fn, emb, labels, ClassAwareAttention()(logits, labels))
    weights = ClassAwareAttention()(logits.to(dtype), labels)
    loss, grad = loss_and_grad(loss_fn, emb.to(dtype), labels, weights)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert abs(loss.item() - ref.item()) <= LOSS_RTOL * abs(ref.item())  # measured <= 1.3e-5
    assert grad_cosine(grad, ref_grad) >= GRAD_COSINE  # measured >= 0.99999


@pytest.mark.parametrize("dtype", HALF)
def test_am_supcon_under_autocast_is_exactly_the_float32_loss(dtype):
    """The autocast declaration (custom_fwd cast_inputs=float32, custom_bwd) of the custom function.

    Without it autocast runs the similarity matrix in half precision (the loss changes) and
    a backward inside the autocast region meets the sparse CSR product in half precision.
    """
    emb, labels, w = speaker_batch()
    weights = ClassAwareAttention()(cosine_logits(emb, w), labels)
    loss_fn = AngularMarginSupConLoss(margin=0.2, temperature=0.07)
    ref, ref_grad = loss_and_grad(loss_fn, emb, labels, weights)
    x = emb.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=dtype):
        loss = loss_fn(x, labels, weights)
        (grad,) = torch.autograd.grad(loss, x)  # as MGDA does, inside SpeechBrain's autocast region
    assert loss.dtype == torch.float32
    assert torch.equal(loss, ref) and torch.equal(grad, ref_grad)


def test_am_supcon_backward_outside_autocast_is_exact_too():
    emb, labels, _ = speaker_batch()
    loss_fn = AngularMarginSupConLoss()
    ref, ref_grad = loss_and_grad(loss_fn, emb, labels)
    x = emb.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(x, labels)
    loss.backward()  # SpeechBrain's fit_batch: backward after the autocast region
    assert torch.equal(loss, ref) and torch.equal(x.grad, ref_grad)


def test_am_supcon_float64_stays_float64():
    emb, labels, _ = speaker_batch()
    loss, grad = loss_and_grad(AngularMarginSupConLoss(), emb.double(), labels)
    assert loss.dtype == torch.float64 and grad.dtype == torch.float64


# ---------------------------------------------------------------------------- class-aware attention


@pytest.mark.parametrize("dtype", HALF)
def test_caa_weights_from_half_logits(dtype):
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(16).repeat_interleave(4)
    cos = torch.rand(64, 16, generator=gen) * 0.9 - 0.3  # true-class probabilities spread over decades
    caa = ClassAwareAttention(scale=30.0)
    weights, ref = caa(cos.to(dtype), labels), caa(cos, labels)
    assert weights.dtype == torch.float32
    assert torch.equal(weights, caa(cos.to(dtype).float(), labels))  # computed in float32
    negatives = ref > 0
    assert torch.equal(weights > 0, negatives)
    # Each cosine moves by <= u |cos| <= u when rounded: log p by <= 2 s u, its row normalisation
    # doubles that; measured 0.12 (bfloat16) and 0.014 (float16) in log w.
    log_error = (weights[negatives].log() - ref[negatives].log()).abs().max()
    assert log_error <= 4 * caa.scale * UNIT_ROUNDOFF[dtype]


# ---------------------------------------------------------------------------- parallel cosine loss


@pytest.mark.parametrize("dtype", HALF)
def test_parallel_cosine_on_half_embeddings(dtype):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(64, 1, 192, generator=gen)
    b = a + 0.8 * torch.randn(64, 1, 192, generator=gen)
    loss_fn = ParallelCosineLoss()
    ref, ref_grad = loss_and_grad(loss_fn, a, b)
    loss, grad = loss_and_grad(loss_fn, a.to(dtype), b.to(dtype))
    exact, exact_grad = loss_and_grad(loss_fn, a.to(dtype).float(), b.to(dtype).float())
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    assert torch.equal(loss, exact) and torch.equal(grad, exact_grad.to(dtype))
    assert abs(loss.item() - ref.item()) <= LOSS_RTOL * ref.item()  # measured <= 1.2e-4
    assert grad_cosine(grad, ref_grad) >= GRAD_COSINE
    with torch.autocast("cpu", dtype=dtype):
        assert torch.equal(loss_fn(a, b), ref)


# ---------------------------------------------------------------------------- balancers


def encoder_and_heads(seed):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(64, 40, generator=gen)
    encoder = torch.nn.Linear(40, 192)
    with torch.no_grad():
        encoder.weight.copy_(torch.randn(192, 40, generator=gen) / 40**0.5)
        encoder.bias.zero_()
    classes = torch.nn.functional.normalize(torch.randn(16, 192, generator=gen), dim=1)
    return feats, encoder, classes, torch.arange(16).repeat_interleave(4)


def mgda_step(seed, autocast_dtype=None):
    """AAM-like classification and AM-SupCon on a linear encoder's embeddings, balanced by MGDA."""
    feats, encoder, classes, labels = encoder_and_heads(seed)
    with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        emb = encoder(feats)
        logits = torch.nn.functional.normalize(emb, dim=1) @ classes.T
        losses = {
            "cls": torch.nn.functional.cross_entropy(30 * logits, labels),
            "con": AngularMarginSupConLoss()(emb, labels),
        }
        total, stats = MGDABalancer()(losses, emb)
    total.backward()
    return emb.dtype, total, stats["alpha"], encoder.weight.grad


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("seed", [0, 1])
def test_mgda_under_autocast_is_within_tolerance_of_float32(dtype, seed):
    _, ref, ref_alpha, ref_grad = mgda_step(seed)
    emb_dtype, total, alpha, grad = mgda_step(seed, dtype)
    assert emb_dtype == dtype  # the gradients MGDA compares are half-precision
    assert total.dtype == torch.float32 and torch.isfinite(grad).all()
    assert abs(alpha - ref_alpha) <= 1e-2  # measured <= 3e-4 (bfloat16)
    assert abs(total.item() - ref.item()) <= LOSS_RTOL * ref.item()  # measured <= 3.5e-4
    assert grad_cosine(grad, ref_grad) >= 0.99


@pytest.mark.parametrize("dtype", HALF)
def test_min_norm_coefficient_of_half_gradients_is_that_of_their_values(dtype):
    gen = torch.Generator().manual_seed(0)
    g1, g2 = (torch.randn(64, 192, generator=gen).to(dtype) * 1e-3 for _ in range(2))
    assert min_norm_coefficient(g1, g2) == min_norm_coefficient(g1.double(), g2.double())


@pytest.mark.parametrize("dtype", HALF)
def test_balancers_combine_half_terms_in_float32(dtype):
    terms = {"aam": torch.tensor(12.34, dtype=dtype), "cos": torch.tensor(0.1234, dtype=dtype)}
    expected = 1.0 * terms["aam"].float() + 0.7 * terms["cos"].float()
    total, _ = FixedWeights({"aam": 1.0, "cos": 0.7})(terms)
    assert total.dtype == torch.float32 and torch.equal(total, expected)
    grouped = GroupedBalancer(FixedWeights({"cls": 1.0}), {"cls": {"aam": 1.0, "cos": 0.7}})
    total, stats = grouped(terms)
    assert total.dtype == torch.float32 and torch.equal(total, expected)
    assert stats["group_cls"] == float(expected)


# ---------------------------------------------------------------------------- emotion-aware masking


def masking_batch(seed):
    gen = torch.Generator().manual_seed(seed)
    envelope = torch.linspace(0.1, 1.0, 16000).roll(3000 * seed)  # well-separated frame energies
    wavs = torch.randn(4, 16000, generator=gen) * envelope
    return torch.randn(4, 101, 80, generator=gen), wavs, torch.tensor([1.0, 0.9, 0.7, 0.55])


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("fill", ["mean", "zero"])
def test_emotion_mask_on_half_features_and_waveforms(dtype, fill):
    feats, wavs, lens = masking_batch(1)
    em = EnergyEmotionMask(mask_ratio=0.2, fill=fill)
    energy, ref_energy = em.frame_energy(wavs.to(dtype), lens), em.frame_energy(wavs, lens)
    assert energy.dtype == torch.float32
    assert torch.equal(energy, em.frame_energy(wavs.to(dtype).float(), lens))  # computed in float32
    # Each sample moves by <= u relative when rounded, so does each frame's RMS (measured 9.3e-4, bfloat16).
    valid = ref_energy > 0
    assert ((energy - ref_energy).abs()[valid] / ref_energy[valid]).max() <= UNIT_ROUNDOFF[dtype]
    masked, mask = em(feats.to(dtype), wavs.to(dtype), lens)
    exact, exact_mask = em(feats.to(dtype).float(), wavs.to(dtype).float(), lens)
    assert masked.dtype == dtype
    assert torch.equal(mask, em(feats, wavs, lens)[1])  # the same frames as in float32
    assert torch.equal(mask, exact_mask) and torch.equal(masked, exact.to(dtype))
    plain = em(feats, wavs, lens)[0]
    with torch.autocast("cpu", dtype=dtype):
        assert torch.equal(em(feats, wavs, lens)[0], plain)


# ---------------------------------------------------------------------------- one training step of every Brain

#: One SynthEmo row per Brain (the paper rows, MGDA included).
BRAIN_ROWS = {
    "SpeakerBrain": "ecapa_aam.yaml",
    "ContrastiveSpeakerBrain": "ecapa_aam_amsupcon_caa_mgda.yaml",
    "EmotionInvariantBrain": "ecapa_aam_copypaste_cos_em.yaml",
    "EmotionContrastiveBrain": "ecapa_aam_amsupcon_caa_mgda_copypaste_cos_em.yaml",
}


def training_step(folder, corpus, row, precision, initial_state=None):
    """One ``fit_batch`` of a Brain built with SpeechBrain's ``precision`` run option.

    Returns the loss, the state the step started from, the dtype of the embeddings, the
    gradients the optimizer saw and the parameter updates.
    """
    brain = make_brain(folder, corpus, row=row, run_opts={"precision": precision})
    if initial_state is not None:
        brain.modules.load_state_dict(initial_state)
    state = {name: value.clone() for name, value in brain.modules.state_dict().items()}
    _, batch = first_batch(brain)
    brain.on_fit_start()
    dtypes, grads = [], {}
    brain.modules.embedding_model.register_forward_hook(lambda module, inputs, out: dtypes.append(out.dtype))

    def keep_grads(optimizer, args, kwargs):
        grads.update({n: p.grad.clone() for n, p in brain.modules.named_parameters() if p.grad is not None})

    brain.optimizer.register_step_pre_hook(keep_grads)
    before = {n: p.detach().clone() for n, p in brain.modules.named_parameters()}
    loss = brain.fit_batch(batch)
    updates = {n: p.detach() - before[n] for n, p in brain.modules.named_parameters()}
    return SimpleNamespace(brain=brain, loss=loss, state=state, dtypes=dtypes, grads=grads, updates=updates)


@pytest.mark.parametrize("brain_class", sorted(BRAIN_ROWS))
def test_one_step_of_every_brain_in_bf16_is_within_tolerance_of_float32(tmp_path, tiny_synthemo, brain_class):
    row = BRAIN_ROWS[brain_class]
    ref = training_step(tmp_path / "fp32", tiny_synthemo, row, "fp32")
    half = training_step(tmp_path / "bf16", tiny_synthemo, row, "bf16", initial_state=ref.state)
    assert type(half.brain).__name__ == brain_class
    assert ref.dtypes == [torch.float32] and half.dtypes == [torch.bfloat16]  # autocast ran the encoder
    assert half.loss.dtype == torch.float32 and torch.isfinite(half.loss)
    assert abs(float(half.loss) - float(ref.loss)) <= 1e-2 * float(ref.loss)  # measured <= 4.0e-3
    assert all(torch.isfinite(u).all() for u in half.updates.values())
    assert sum(int(u.count_nonzero()) for u in half.updates.values()) > 0
    # The layer that outputs the embeddings gets every loss term's gradient (measured cosine >= 0.999).
    fc = "embedding_model.fc.conv.weight"
    assert grad_cosine(half.grads[fc], ref.grads[fc]) >= 0.99


def test_speechbrain_refuses_fp16_on_cpu(tmp_path, tiny_synthemo):
    # SpeechBrain 1.1.2: fp16 autocast and its GradScaler are for CUDA only; bf16 is the CPU option.
    with pytest.raises(ValueError, match="bf16"):
        make_brain(tmp_path, tiny_synthemo, row=BRAIN_ROWS["SpeakerBrain"], run_opts={"precision": "fp16"})
