"""Brains: :class:`SpeakerBrain` (the baseline and its hooks) and the subclasses that
override a hook or two for each paper's method.
"""

from speechbrain_ext.brains.contrastive import ContrastiveSpeakerBrain
from speechbrain_ext.brains.emotion import EmotionContrastiveBrain, EmotionInvariantBrain
from speechbrain_ext.brains.speaker import SpeakerBrain, TrainingAborted

__all__ = ["SpeakerBrain", "TrainingAborted", "ContrastiveSpeakerBrain"]
__all__ += ["EmotionContrastiveBrain", "EmotionInvariantBrain"]
