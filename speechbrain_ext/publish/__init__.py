"""Publish a trained experiment: a SpeechBrain model folder, the Hugging Face Hub, ONNX, a verify command.

One concern per module:

* :mod:`~speechbrain_ext.publish.layout`: the file names of an exported folder, :class:`PublishError`,
  :func:`is_export`, :func:`read_threshold`;
* :mod:`~speechbrain_ext.publish.experiment`: read a training output folder (checkpoints,
  composed hyperparameters, ``metrics.json``);
* :mod:`~speechbrain_ext.publish.inference_yaml`: the export's ``hyperparams.yaml``;
* :mod:`~speechbrain_ext.publish.checkpoint`: strict, pickle-free loading of the checkpoint;
* :mod:`~speechbrain_ext.publish.calibration`: the run's ``calibration.json`` carried into the
  export, what ``verify`` can apply of it, its section of the card;
* :mod:`~speechbrain_ext.publish.model_card`: the ``README.md`` of the export;
* :mod:`~speechbrain_ext.publish.leaks`: no path or user name of this machine in any published file;
* :mod:`~speechbrain_ext.publish.folder`: :func:`export_model`, the folder written and checked;
* :mod:`~speechbrain_ext.publish.onnx_export`: waveform → embedding as padding-invariant ONNX and
  TorchScript graphs, parity with the evaluation's extraction;
* :mod:`~speechbrain_ext.publish.push`: :func:`push_model` to the Hub;
* :mod:`~speechbrain_ext.publish.verify`: score two recordings with an exported model (LLR and a
  decision at a prior when it is calibrated);
* :mod:`~speechbrain_ext.publish.cli`: ``python -m speechbrain_ext.publish export|push``.

``python -m speechbrain_ext.verify a.wav b.wav --model <folder or repo id>`` is the short
form of the verify command.

Example
-------
>>> from speechbrain_ext.publish import PublishError, export_model
>>> issubclass(PublishError, RuntimeError)
True
"""

from speechbrain_ext.publish.experiment import find_checkpoint
from speechbrain_ext.publish.folder import export_model
from speechbrain_ext.publish.layout import PublishError, is_export, read_threshold
from speechbrain_ext.publish.push import push_model
from speechbrain_ext.publish.verify import VerifyError, verify_files

__all__ = [
    "PublishError",
    "VerifyError",
    "export_model",
    "find_checkpoint",
    "is_export",
    "push_model",
    "read_threshold",
    "verify_files",
]
