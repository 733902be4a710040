"""Deprecated: the ONNX / TorchScript export moved to :mod:`speechbrain_ext.publish.onnx_export`.

``speechbrain_ext.export.<name>`` still resolves, to the same object, with a DeprecationWarning.

Example
-------
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore", DeprecationWarning)
...     from speechbrain_ext.export import ExportableECAPA
>>> ExportableECAPA.__module__
'speechbrain_ext.publish.onnx_export'
"""

from speechbrain_ext.publish.moved import moved_names

__getattr__ = moved_names(__name__, {
    name: ("speechbrain_ext.publish.onnx_export", name)
    for name in ("ConvSTFT", "EmbeddingPipeline", "ExportableECAPA", "ExportableFbank", "PARITY_SECONDS",
                 "export_onnx", "export_torchscript", "onnx_session", "parity_report", "reference_embeddings")
})
