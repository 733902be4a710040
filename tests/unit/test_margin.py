"""The per-step margin schedule of large-margin fine-tuning (speechbrain_ext.margin)."""

import math
import os

import pytest
import torch
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

from speechbrain_ext.losses import AngularMarginSupConLoss
from speechbrain_ext.margin import MarginScheduleError, MarginScheduler, ramp_fraction, set_aam_margin


def public_state(module):
    return {k: v for k, v in vars(module).items() if not k.startswith("_")}


def aam_outputs(aam):
    torch.manual_seed(0)
    cosine = torch.rand(64, 7) * 2 - 1  # every branch: cos > th and cos <= th (theta + m > pi)
    cosine[0, 0] = -0.99
    targets = torch.nn.functional.one_hot(torch.randint(0, 7, (64,)), 7).float()
    targets[0] = torch.nn.functional.one_hot(torch.tensor(0), 7).float()
    return aam(cosine, targets)


@pytest.mark.parametrize("easy_margin", [False, True])
@pytest.mark.parametrize("margin", [0.0, 0.35, 0.5, 1.2])
def test_set_aam_margin_equals_a_freshly_built_module(margin, easy_margin):
    aam = AdditiveAngularMargin(margin=0.2, scale=30, easy_margin=easy_margin)
    before = aam_outputs(aam)
    set_aam_margin(aam, margin)
    fresh = AdditiveAngularMargin(margin=margin, scale=30, easy_margin=easy_margin)
    assert public_state(aam) == public_state(fresh)  # margin, cos_m, sin_m, th, mm, scale, easy_margin, training
    assert torch.equal(aam_outputs(aam), aam_outputs(fresh))
    assert torch.equal(before, aam_outputs(AdditiveAngularMargin(margin=0.2, scale=30, easy_margin=easy_margin)))
    assert not torch.equal(before, aam_outputs(aam))


def test_set_aam_margin_keeps_the_train_eval_mode():
    aam = AdditiveAngularMargin(margin=0.2, scale=30).eval()
    set_aam_margin(aam, 0.5)
    assert aam.training is False


def test_margin_attribute_alone_would_not_change_the_loss():
    """Why set_aam_margin exists: SpeechBrain caches cos(m), sin(m), th and mm at construction."""
    aam = AdditiveAngularMargin(margin=0.2, scale=30)
    aam.margin = 0.5
    assert torch.equal(aam_outputs(aam), aam_outputs(AdditiveAngularMargin(margin=0.2, scale=30)))


def test_linear_ramp_over_the_first_epoch_per_step():
    loss = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30))
    scheduler = MarginScheduler(loss, final_margin=0.5, ramp_epochs=1)
    values = [scheduler.step(steps_per_epoch=5)["aam_margin"] for _ in range(8)]
    expected = [0.2 + 0.3 * min(t, 5) / 5 for t in range(1, 9)]
    assert values == pytest.approx(expected, abs=1e-12)
    assert values[4] == 0.5 and values[-1] == 0.5  # final at the last step of epoch 1, then held
    assert loss.loss_fn.margin == 0.5 and loss.loss_fn.cos_m == math.cos(0.5)


def test_fractional_ramp_epochs_and_steps_and_no_ramp():
    def run(**kw):
        s = MarginScheduler(AdditiveAngularMargin(margin=0.2), final_margin=0.5, **kw)
        return [round(s.step(steps_per_epoch=10)["aam_margin"], 10) for _ in range(6)]

    assert run(ramp_epochs=0.5) == [0.26, 0.32, 0.38, 0.44, 0.5, 0.5]
    assert run(ramp_steps=3) == [0.3, 0.4, 0.5, 0.5, 0.5, 0.5]
    assert run(ramp_steps=0) == [0.5] * 6  # WeSpeaker's _lm.yaml: the final margin from the first step


def test_exponential_ramp_is_monotone_and_ends_at_the_final_margin():
    assert ramp_fraction(0, 10, "exp") == 0.0
    values = [ramp_fraction(t, 10, "exp") for t in range(12)]
    assert all(a < b for a, b in zip(values[:10], values[1:11], strict=True))
    assert values[10] == values[11] == 1.0
    assert values[5] > 0.5  # fast first, as WeSpeaker's 1 - 10^(-3x)


def test_contrastive_margin_ramps_only_when_named():
    aam, con = AdditiveAngularMargin(margin=0.2, scale=30), AngularMarginSupConLoss(margin=0.2)
    held = MarginScheduler(aam, final_margin=0.5, ramp_steps=2)
    assert set(held.step()) == {"aam_margin"} and con.margin == 0.2
    ramped = MarginScheduler(AdditiveAngularMargin(margin=0.2), final_margin=0.5, ramp_steps=2,
                             contrastive_loss=con, contrastive_final_margin=0.3)
    assert ramped.step() == pytest.approx({"aam_margin": 0.35, "contrastive_margin": 0.25})
    assert ramped.step() == pytest.approx({"aam_margin": 0.5, "contrastive_margin": 0.3})
    assert con.margin == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"final_margin": 0.5}, "exactly one of ramp_epochs and ramp_steps"),
        ({"final_margin": 0.5, "ramp_epochs": 1, "ramp_steps": 3}, "exactly one"),
        ({"final_margin": 4.0, "ramp_steps": 1}, r"final_margin must lie in \[0, pi\), got 4.0"),
        ({"final_margin": -0.1, "ramp_steps": 1}, "final_margin must lie"),
        ({"final_margin": 0.5, "ramp_steps": -1}, "ramp_steps must be a number >= 0"),
        ({"final_margin": 0.5, "ramp_steps": 1, "ramp": "cosine"}, "ramp must be one of linear, exp"),
        ({"final_margin": 0.5, "ramp_steps": 1, "contrastive_final_margin": 0.3}, "contrastive_loss is null"),
        ({"final_margin": 0.5, "ramp_steps": 1, "contrastive_loss": torch.nn.MSELoss(),
          "contrastive_final_margin": 0.3}, "expected AngularMarginSupConLoss, got MSELoss"),
        ({"final_margin": 0.5, "ramp_steps": 1, "contrastive_loss": AngularMarginSupConLoss()},
         "contrastive_final_margin must lie"),
    ],
)
def test_bad_schedules_are_refused_naming_the_key(kwargs, match):
    with pytest.raises(MarginScheduleError, match=match):
        MarginScheduler(AdditiveAngularMargin(margin=0.2), **kwargs)


def test_a_loss_without_an_angular_margin_is_refused():
    with pytest.raises(MarginScheduleError, match="aam_loss: expected .*AdditiveAngularMargin.*got NLLLoss"):
        MarginScheduler(torch.nn.NLLLoss(), final_margin=0.5, ramp_steps=1)


def test_ramp_in_epochs_needs_the_epoch_length():
    scheduler = MarginScheduler(AdditiveAngularMargin(margin=0.2), final_margin=0.5, ramp_epochs=1)
    with pytest.raises(MarginScheduleError, match="ramp_epochs=1 needs the number of training steps per epoch"):
        scheduler.step()


def test_resume_mid_ramp_continues_the_ramp_exactly(tmp_path):
    def make():
        return MarginScheduler(LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30)), final_margin=0.5,
                               ramp_epochs=1, contrastive_loss=AngularMarginSupConLoss(margin=0.2),
                               contrastive_final_margin=0.25)

    uninterrupted = make()
    reference = [uninterrupted.step(steps_per_epoch=7) for _ in range(10)]
    first = make()
    done = [first.step(steps_per_epoch=7) for _ in range(3)]
    path = os.path.join(tmp_path, "margin_scheduler.ckpt")
    first.save(path)
    resumed = make()
    resumed.load(path)
    assert resumed.aam.margin == done[-1]["aam_margin"]  # the modules carry the last step's margins at once
    assert resumed.contrastive.margin == done[-1]["contrastive_margin"]
    # a resumed run may not know the epoch length before its first step: the saved ramp length is used
    rest = [resumed.step(steps_per_epoch=None) for _ in range(7)]
    assert done + rest == reference  # bit-identical floats


def test_a_checkpoint_of_another_schedule_is_refused(tmp_path):
    path = os.path.join(tmp_path, "m.ckpt")
    MarginScheduler(AdditiveAngularMargin(margin=0.2), final_margin=0.5, ramp_steps=3).save(path)
    other = MarginScheduler(AdditiveAngularMargin(margin=0.2), final_margin=0.4, ramp_steps=3)
    with pytest.raises(MarginScheduleError, match="m.ckpt: the checkpoint's margin schedule .* differs"):
        other.load(path)
