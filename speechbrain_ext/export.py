"""Deprecated: the ONNX / TorchScript export moved to :mod:`speechbrain_ext.publish.onnx_export`.

``speechbrain_ext.export.<name>`` still resolves, to the same object, with a DeprecationWarning.
``ExportableECAPA`` (ECAPA-TDNN with trace-safe masks) resolves to
:class:`speechbrain_ext.encoders.ecapa.PaddingInvariantECAPA`, which replaced it in the
export: the same layers, trace-safe, and also padded per utterance.

Example
-------
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore", DeprecationWarning)
...     from speechbrain_ext.export import ExportableECAPA, export_onnx
>>> ExportableECAPA.__name__, export_onnx.__module__
('PaddingInvariantECAPA', 'speechbrain_ext.publish.onnx_export')
"""

from speechbrain_ext.publish.moved import moved_names

__getattr__ = moved_names(__name__, {
    **{name: ("speechbrain_ext.publish.onnx_export", name)
       for name in ("ConvSTFT", "EmbeddingPipeline", "ExportableFbank", "PARITY_SECONDS", "export_onnx",
                    "export_torchscript", "onnx_session", "parity_report", "reference_embeddings")},
    "ExportableECAPA": ("speechbrain_ext.encoders.ecapa", "PaddingInvariantECAPA"),
})
