"""Speed perturbation with speaker-label expansion, as WeSpeaker and 3D-Speaker train.

Playing a waveform at speed ``s`` scales its pitch and formants by ``s``: to a speaker
encoder it is another voice. So, as in WeSpeaker's and 3D-Speaker's recipes, the
perturbed copy is a NEW training class: speaker ``i`` at the ``k``-th speed of
``speeds`` is class ``k * n_speakers + i``, and the classifier has
``len(speeds) * n_speakers`` outputs. With ``speeds`` starting at 1.0 (the default), the
unperturbed speakers keep their labels.

One speed is drawn per speaker of the batch, not per utterance: every utterance of a
class in a P x K batch is the same voice, so contrastive positives stay positives and
a CopyPaste input ``x'`` gets the speed of its ``x``. The draws use torch's global
generator (seeded and checkpointed with the run, like SpeechBrain's augmentations).

In a recipe of this collection it is one YAML key (``speed_perturb``, see
``recipes/shared_hparams/speed_perturb.yaml``). In another SpeechBrain recipe, build it with
the number of training speakers, size the classifier ``perturb.n_classes``, and call it in
``compute_forward`` on training batches only, before any other waveform augmentation::

    if stage == sb.Stage.TRAIN:
        wavs, lens, labels = self.hparams.speed_perturb(wavs, lens, batch.spk_id_encoded.data)

and use the returned ``labels`` in the classification (and any contrastive) loss.

Lengths: the output keeps the batch's padded length. A sped-up row is shorter and is
zero-padded (its relative length falls below 1); a slowed-down row is longer and is
cut at the padded length. Only training sees it; validation and evaluation do not.

Example
-------
>>> torch.manual_seed(0) is not None
True
>>> perturb = SpeakerSpeedPerturb(speeds=[1.0, 0.9, 1.1], n_speakers=4)
>>> wavs, lens = torch.randn(4, 16000), torch.ones(4)
>>> labels = torch.tensor([0, 0, 3, 3])
>>> out, out_lens, out_labels = perturb(wavs, lens, labels)
>>> out.shape, perturb.n_classes
(torch.Size([4, 16000]), 12)
>>> bool(out_labels[0] == out_labels[1]) and bool(out_labels[2] == out_labels[3])
True
>>> sorted(set((out_labels % 4).tolist()))
[0, 3]
"""

import torch
import torchaudio

from speechbrain_ext.errors import SpeechBrainExtError

__all__ = ["SpeakerSpeedPerturb", "SpeedPerturbError", "expand_label_encoder"]


class SpeedPerturbError(SpeechBrainExtError, ValueError):
    """A speed list, a label or a classifier size that speed perturbation cannot work with."""


class SpeakerSpeedPerturb(torch.nn.Module):
    """Speed perturbation of training waveforms, each perturbed speaker a new class.

    Arguments
    ---------
    n_speakers : int
        Training speakers (classes before expansion; YAML: ``n_speakers``).
    speeds : sequence of float
        Playback speeds, drawn with equal probability per speaker of a batch; the ``k``-th
        is class block ``k``. Distinct and within ``(0.5, 2.0)``; WeSpeaker's ``[1.0, 0.9, 1.1]``
        by default.
    sample_rate : int
        The waveforms' rate. A speed ``s`` resamples from ``round(sample_rate * s)`` to it,
        so ``s * sample_rate`` must be an integer number of hertz.

    Example
    -------
    >>> perturb = SpeakerSpeedPerturb(n_speakers=10, speeds=[1.0, 0.9])
    >>> perturb.expand(torch.tensor([3, 3, 7]), torch.tensor([1, 1, 0])).tolist()
    [13, 13, 7]
    >>> wavs, lens = perturb.apply(torch.randn(2, 1600), torch.ones(2), torch.tensor([0, 1]))
    >>> lens.tolist()  # 0.9x speed: longer, cut at the padded length
    [1.0, 1.0]
    >>> SpeakerSpeedPerturb(n_speakers=10, speeds=[1.0, 1.0])
    Traceback (most recent call last):
      ...
    speechbrain_ext.speed_perturb.SpeedPerturbError: speed_perturb.speeds has 1.0 twice: [1.0, 1.0]
    """

    def __init__(self, n_speakers, speeds=(1.0, 0.9, 1.1), sample_rate=16000):
        super().__init__()
        speeds = [float(s) for s in speeds]
        if not speeds:
            raise SpeedPerturbError("speed_perturb.speeds is empty: give at least one speed, e.g. [1.0, 0.9, 1.1]")
        for speed in speeds:
            if speeds.count(speed) > 1:
                raise SpeedPerturbError(f"speed_perturb.speeds has {speed} twice: {speeds}")
            if not 0.5 < speed < 2.0:
                raise SpeedPerturbError(f"speed_perturb.speeds: {speed} is outside (0.5, 2.0): {speeds}")
            if not float(sample_rate * speed).is_integer():
                raise SpeedPerturbError(
                    f"speed_perturb.speeds: {speed} x sample_rate {sample_rate} is not a whole number of hertz"
                )
        if int(n_speakers) < 1:
            raise SpeedPerturbError(f"speed_perturb.n_speakers must be >= 1, got {n_speakers}")
        self.speeds = speeds
        self.n_speakers = int(n_speakers)
        self.sample_rate = int(sample_rate)

    @property
    def n_classes(self):
        """Outputs the classifier needs: ``len(speeds) * n_speakers``."""
        return len(self.speeds) * self.n_speakers

    def check_classifier(self, classifier, key="classifier"):
        """Raise :class:`SpeedPerturbError` unless ``classifier`` has :attr:`n_classes` outputs.

        ``classifier`` is a module with a ``weight`` of ``[classes, embedding size]``, as
        SpeechBrain's ECAPA-TDNN ``Classifier`` (the one every recipe here uses).

        Example
        -------
        >>> from speechbrain.lobes.models.ECAPA_TDNN import Classifier
        >>> SpeakerSpeedPerturb(n_speakers=5).check_classifier(Classifier(input_size=4, out_neurons=15))
        >>> SpeakerSpeedPerturb(n_speakers=5).check_classifier(Classifier(input_size=4, out_neurons=5))
        Traceback (most recent call last):
          ...
        speechbrain_ext.speed_perturb.SpeedPerturbError: classifier has 5 outputs but speed perturbation ...
        """
        weight = getattr(classifier, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            raise SpeedPerturbError(
                f"{key} ({type(classifier).__name__}) has no 2-d weight [classes, embedding size] to check "
                "against speed perturbation's classes"
            )
        if weight.shape[0] != self.n_classes:
            k = len(self.speeds)
            raise SpeedPerturbError(
                f"{key} has {weight.shape[0]} outputs but speed perturbation needs {self.n_classes} "
                f"({k} speeds x n_speakers {self.n_speakers}): set its out_neurons to n_speakers * {k}"
            )

    def draw(self, labels):
        """The speed index of each row: one draw per distinct label, shared by its rows."""
        classes, inverse = torch.unique(labels.cpu(), return_inverse=True)
        picks = torch.randint(len(self.speeds), (classes.numel(),))
        return picks[inverse].to(labels.device)

    def expand(self, labels, speed_index):
        """Class of each row: ``speed_index * n_speakers + label`` (labels must be < ``n_speakers``)."""
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.n_speakers):
            bad = labels[(labels < 0) | (labels >= self.n_speakers)][0]
            raise SpeedPerturbError(
                f"speaker label {int(bad)} is outside [0, {self.n_speakers}): speed_perturb.n_speakers "
                "must be the training set's number of speakers"
            )
        return speed_index.to(labels.device) * self.n_speakers + labels

    def apply(self, wavs, lens, speed_index):
        """Play every row at its speed; the padded length is kept, relative lengths follow."""
        wavs, lens = wavs.clone(), lens.clone().float()
        size = wavs.shape[1]
        for k, speed in enumerate(self.speeds):
            rows = (speed_index == k).nonzero().flatten()
            if speed == 1.0 or rows.numel() == 0:
                continue
            played = torchaudio.functional.resample(
                wavs[rows], orig_freq=round(self.sample_rate * speed), new_freq=self.sample_rate
            )
            keep = min(size, played.shape[1])
            wavs[rows] = 0.0
            wavs[rows, :keep] = played[:, :keep]
            # the valid samples scale by 1 / speed; round up so a whole row stays whole
            lens[rows] = torch.clamp(torch.ceil(lens[rows] * size / speed) / size, max=1.0)
        return wavs, lens

    def forward(self, wavs, lens, labels):
        """Perturb a training batch: ``(wavs, lens, labels)`` → the same, played and relabelled."""
        speed_index = self.draw(labels)
        wavs, lens = self.apply(wavs, lens.to(wavs.device), speed_index.to(wavs.device))
        return wavs, lens, self.expand(labels, speed_index)

    def extra_repr(self):
        """The settings, in the module's printed form."""
        return f"speeds={self.speeds}, n_speakers={self.n_speakers}, sample_rate={self.sample_rate}"



def expand_label_encoder(encoder, speeds):
    """The classes of a speed-perturbed classifier, as a label encoder of its size.

    Speaker ``label`` (index ``i`` of ``encoder``) at the ``k``-th speed is index
    ``k * len(encoder) + i``, labelled ``label`` at speed 1.0 and ``label@speed<s>``
    otherwise, so a published classifier names every one of its outputs.

    Example
    -------
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> speakers = CategoricalEncoder(); speakers.update_from_iterable(["ann", "bob"])
    >>> expanded = expand_label_encoder(speakers, [1.0, 0.9])
    >>> [expanded.ind2lab[i] for i in range(4)]
    ['ann', 'bob', 'ann@speed0.9', 'bob@speed0.9']
    """
    from speechbrain.dataio.encoder import CategoricalEncoder

    n = len(encoder)
    expanded = CategoricalEncoder()
    for speed in (float(s) for s in speeds):
        suffix = "" if speed == 1.0 else f"@speed{speed:g}"
        for i in range(n):
            label = f"{encoder.ind2lab[i]}{suffix}"
            if label in expanded.lab2ind:
                raise SpeedPerturbError(f"speeds {list(speeds)} give the class label {label!r} twice")
            expanded.add_label(label)
    return expanded
