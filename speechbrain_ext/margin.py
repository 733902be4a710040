"""Per-step schedule of the loss margins, for large-margin fine-tuning.

Large-margin fine-tuning (WeSpeaker's ``conf/*_lm.yaml``; methods.md, "large-margin
fine-tuning") continues a trained run with longer crops and a larger AAM margin.
:class:`MarginScheduler` raises the margin from its trained value to the final one
over the first ``ramp_epochs`` (or ``ramp_steps``) training steps and holds it
there. The recipes declare ``margin_scheduler: null`` in their base YAML; the
``*_lm.yaml`` systems set it (``recipes/shared_hparams/large_margin.yaml``) and
:class:`~speechbrain_ext.brains.SpeakerBrain` calls :meth:`MarginScheduler.step`
once per training step, logs the margins per epoch (mean, min, max) and checkpoints
the scheduler, so a run resumed mid-ramp continues the ramp where it stopped.

SpeechBrain's ``AdditiveAngularMargin`` caches ``cos_m``, ``sin_m``, ``th`` and ``mm``
when it is built, so assigning its ``margin`` alone would change nothing:
:func:`set_aam_margin` updates every value the class derives from the margin.
"""

import json
import math

from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

from speechbrain_ext.errors import SpeechBrainExtError
from speechbrain_ext.losses import AngularMarginSupConLoss

__all__ = ["MarginScheduleError", "MarginScheduler", "ramp_fraction", "set_aam_margin"]

#: Ramp shapes: ``linear``, or ``exp`` (WeSpeaker's ``increase_type: exp``, 1 - 10^(-3x), scaled to end at 1).
RAMPS = ("linear", "exp")
#: nn.Module attributes that are not derived from the margin (never copied from a fresh module).
_MODULE_STATE = frozenset({"training"})


class MarginScheduleError(SpeechBrainExtError, ValueError):
    """A margin schedule that cannot be applied (bad margin, ramp or loss); the message names the key.

    Example
    -------
    >>> str(MarginScheduleError("final_margin must lie in [0, pi), got 4"))
    'final_margin must lie in [0, pi), got 4'
    """


def _check_margin(name, value):
    if not (isinstance(value, int | float) and 0.0 <= float(value) < math.pi):
        raise MarginScheduleError(f"{name} must lie in [0, pi), got {value!r}")
    return float(value)


def aam_module(loss):
    """The ``AdditiveAngularMargin`` of a recipe's ``aam_loss`` (``LogSoftmaxWrapper``) or the module itself.

    Example
    -------
    >>> aam = AdditiveAngularMargin(margin=0.2, scale=30)
    >>> aam_module(LogSoftmaxWrapper(aam)) is aam, aam_module(aam) is aam
    (True, True)
    >>> aam_module(LogSoftmaxWrapper(lambda o, t: o))
    Traceback (most recent call last):
    ...
    speechbrain_ext.margin.MarginScheduleError: aam_loss: expected speechbrain.nnet.losses.AdditiveAngularMargin ...
    """
    inner = loss.loss_fn if isinstance(loss, LogSoftmaxWrapper) else loss
    if not isinstance(inner, AdditiveAngularMargin):
        raise MarginScheduleError(
            "aam_loss: expected speechbrain.nnet.losses.AdditiveAngularMargin (or a LogSoftmaxWrapper of one), "
            f"got {type(inner).__name__}"
        )
    return inner


def set_aam_margin(aam, margin):
    """Set the margin of an ``AdditiveAngularMargin`` and every value derived from it.

    The derived values are taken from a module freshly built at ``margin`` (same
    scale and ``easy_margin``), so the module computes exactly what a new one would,
    whatever SpeechBrain caches.

    Arguments
    ---------
    aam : speechbrain.nnet.losses.AdditiveAngularMargin
        The module to update in place.
    margin : float
        The new margin (radians).

    Example
    -------
    >>> import torch
    >>> aam = AdditiveAngularMargin(margin=0.2, scale=30)
    >>> set_aam_margin(aam, 0.5)
    >>> cos, target = torch.tensor([[0.9, 0.1]]), torch.tensor([[1.0, 0.0]])
    >>> bool(torch.equal(aam(cos, target), AdditiveAngularMargin(margin=0.5, scale=30)(cos, target)))
    True
    """
    fresh = AdditiveAngularMargin(margin=float(margin), scale=aam.scale, easy_margin=aam.easy_margin)
    for key, value in vars(fresh).items():
        if not key.startswith("_") and key not in _MODULE_STATE:
            setattr(aam, key, value)


def ramp_fraction(step, ramp_steps, ramp="linear"):
    """How far the margin has moved from its initial to its final value after ``step`` steps (0 to 1).

    ``step`` counts the steps done including the current one, so the last step of
    the ramp (``step == ramp_steps``) trains at the final margin; ``ramp_steps=0``
    jumps to it at once (WeSpeaker's ``_lm.yaml`` setting).

    Example
    -------
    >>> [ramp_fraction(s, 4) for s in range(6)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    >>> round(ramp_fraction(2, 4, "exp"), 4), ramp_fraction(4, 4, "exp"), ramp_fraction(1, 0)
    (0.9693, 1.0, 1.0)
    """
    if ramp_steps <= 0 or step >= ramp_steps:
        return 1.0
    x = max(step, 0) / ramp_steps
    if ramp == "exp":
        return (1.0 - 1e-3**x) / (1.0 - 1e-3)
    return x


@register_checkpoint_hooks
class MarginScheduler:
    """Raise the AAM margin (and optionally the AM-SupCon margin) per training step, then hold it.

    At the ``t``-th call of :meth:`step` (``t`` = 1, 2, ...) a margin is
    ``initial + (final - initial) * ramp_fraction(t, ramp_steps, ramp)``.

    Arguments
    ---------
    aam_loss : torch.nn.Module
        The recipe's ``aam_loss`` (a ``LogSoftmaxWrapper`` of ``AdditiveAngularMargin``).
    final_margin : float
        The AAM margin at the end of the ramp (0.5 in WeSpeaker's ``_lm.yaml``).
    ramp_epochs : float, optional
        Length of the ramp in epochs (needs ``steps_per_epoch`` in :meth:`step`).
    ramp_steps : int, optional
        Length of the ramp in steps; give exactly one of ``ramp_epochs`` and ``ramp_steps``.
    initial_margin : float, optional
        Where the ramp starts; default: the margin the loss was built with (the trained one).
    ramp : str
        ``linear`` or ``exp`` (see :data:`RAMPS`).
    contrastive_loss : AngularMarginSupConLoss, optional
        Also ramp this loss's margin (None: it keeps the margin it was built with).
    contrastive_final_margin : float, optional
        Its final margin (required with ``contrastive_loss``); it starts from its built margin.

    Example
    -------
    >>> loss = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30))
    >>> scheduler = MarginScheduler(loss, final_margin=0.5, ramp_epochs=1)
    >>> [round(scheduler.step(steps_per_epoch=3)["aam_margin"], 3) for _ in range(4)]
    [0.3, 0.4, 0.5, 0.5]
    >>> loss.loss_fn.margin
    0.5
    """

    def __init__(self, aam_loss, final_margin, ramp_epochs=None, ramp_steps=None, initial_margin=None,
                 ramp="linear", contrastive_loss=None, contrastive_final_margin=None):
        if (ramp_epochs is None) == (ramp_steps is None):
            raise MarginScheduleError("give exactly one of ramp_epochs and ramp_steps")
        if ramp not in RAMPS:
            raise MarginScheduleError(f"ramp must be one of {', '.join(RAMPS)}, got {ramp!r}")
        for name, value in (("ramp_epochs", ramp_epochs), ("ramp_steps", ramp_steps)):
            if value is not None and not (isinstance(value, int | float) and value >= 0):
                raise MarginScheduleError(f"{name} must be a number >= 0, got {value!r}")
        self.aam = aam_module(aam_loss)
        initial = self.aam.margin if initial_margin is None else initial_margin
        self.targets = {"aam_margin": (_check_margin("initial_margin", initial),
                                       _check_margin("final_margin", final_margin))}
        self.contrastive = contrastive_loss
        if contrastive_loss is not None:
            if not isinstance(contrastive_loss, AngularMarginSupConLoss):
                raise MarginScheduleError(
                    f"contrastive_loss: expected AngularMarginSupConLoss, got {type(contrastive_loss).__name__}"
                )
            self.targets["contrastive_margin"] = (
                _check_margin("contrastive_loss margin", contrastive_loss.margin),
                _check_margin("contrastive_final_margin", contrastive_final_margin),
            )
        elif contrastive_final_margin is not None:
            raise MarginScheduleError("contrastive_final_margin is set but contrastive_loss is null")
        self.ramp, self.ramp_epochs = ramp, ramp_epochs
        self.ramp_steps = None if ramp_steps is None else int(ramp_steps)
        self.steps_done = 0

    def margins(self, step):
        """``{name: margin}`` at the ``step``-th step (0: the initial margins).

        Example
        -------
        >>> s = MarginScheduler(AdditiveAngularMargin(margin=0.0), final_margin=0.4, ramp_steps=4)
        >>> s.margins(0), s.margins(2), s.margins(9)
        ({'aam_margin': 0.0}, {'aam_margin': 0.2}, {'aam_margin': 0.4})
        """
        fraction = ramp_fraction(step, self.ramp_steps, self.ramp) if step > 0 else 0.0
        return {name: initial + (final - initial) * fraction for name, (initial, final) in self.targets.items()}

    def _resolve_ramp(self, steps_per_epoch):
        if self.ramp_steps is not None:
            return
        if not steps_per_epoch:
            raise MarginScheduleError(
                f"ramp_epochs={self.ramp_epochs} needs the number of training steps per epoch (got "
                f"{steps_per_epoch!r}); give ramp_steps instead"
            )
        self.ramp_steps = int(round(self.ramp_epochs * steps_per_epoch))

    def apply(self, margins):
        """Set ``margins`` (as :meth:`margins` returns them) on the losses."""
        set_aam_margin(self.aam, margins["aam_margin"])
        if self.contrastive is not None:
            self.contrastive.margin = margins["contrastive_margin"]

    def step(self, steps_per_epoch=None):
        """Advance by one training step and set its margins; returns them (for the epoch statistics).

        Arguments
        ---------
        steps_per_epoch : int, optional
            Training steps per epoch; needed once when the ramp is given in epochs.

        Returns
        -------
        dict
            ``{"aam_margin": ..., ["contrastive_margin": ...]}`` used by this step.
        """
        self._resolve_ramp(steps_per_epoch)
        self.steps_done += 1
        margins = self.margins(self.steps_done)
        self.apply(margins)
        return margins

    @mark_as_saver
    def save(self, path):
        """Write the position in the ramp (JSON)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"steps_done": self.steps_done, "ramp_steps": self.ramp_steps,
                       "targets": {k: list(v) for k, v in self.targets.items()}}, f)

    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Continue the ramp from a checkpoint and set the margins of its last step."""
        del end_of_epoch
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        saved = {k: tuple(v) for k, v in state["targets"].items()}
        if saved != self.targets:
            raise MarginScheduleError(
                f"{path}: the checkpoint's margin schedule {saved} differs from this run's {self.targets}"
            )
        self.steps_done, self.ramp_steps = int(state["steps_done"]), state["ramp_steps"]
        self.apply(self.margins(self.steps_done))
