"""No path or user name of this machine in any exported file, binary ones included."""

import io
import os
import re
import zipfile

import pytest

from speechbrain_ext.publish import PublishError, export_model, onnx_export
from speechbrain_ext.publish.leaks import check_folder, check_no_leaks

USER = "alicetest"


def archive(members):
    """A zip file (the container of torch.save and TorchScript) holding ``{member name: bytes}``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def onnx_model(doc_string="", payload=b"\x00" * 12):
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [len(payload) // 4], payload, raw=True)
    node = helper.make_node("Add", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])], [weight])
    model = helper.make_model(graph, doc_string=doc_string)
    return onnx.shape_inference.infer_shapes(model).SerializeToString()


def test_binary_files_are_searched_for_paths_and_user_names(tmp_path, monkeypatch):
    monkeypatch.setenv("USER", USER)
    exp = str(tmp_path / "runs" / "exp1")
    leaks = {
        "debug record": ("m.pt", archive({"m/code/x.py.debug_pkl": f"/home/{USER}/src/x.py".encode()}),
                         f"m.pt (member m/code/x.py.debug_pkl) would publish a user name of this machine ('{USER}')"),
        "path in a tensor": ("a.ckpt", archive({"a/data/0": b"\x01\x02" + exp.encode() + b"\x03"}),
                             "a.ckpt would publish a path of this machine"),
        "ONNX metadata": ("m.onnx", onnx_model(doc_string=f"exported by {USER}"),
                          "m.onnx (graph without tensor payloads) would publish a user name"),
        "text": ("README.md", f"Trained by {USER}.", "README.md would publish a user name"),
    }
    for case, (name, data, message) in leaks.items():
        with pytest.raises(PublishError, match=re.escape(message)):
            check_no_leaks({name: data}, exp)
        folder = tmp_path / case.replace(" ", "_")
        folder.mkdir()
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
        with pytest.raises(PublishError, match="nothing was written"):
            check_folder(folder, exp)
    # Tensor payloads are numbers: a user name's bytes there are chance, not a leak; nor is a longer word.
    check_no_leaks({"m.pt": archive({"m/data/0": b"\x00" + USER.encode() + b"\x00"}),
                    "m.onnx": onnx_model(payload=(USER + "xyz").encode()),
                    "README.md": f"{USER}ing is not a name"}, exp)


def test_export_refuses_a_torchscript_file_holding_source_paths(experiment, exported, tmp_path, monkeypatch):
    """Traced TorchScript records the traced sources' absolute paths: the export drops them, the check finds them."""
    with zipfile.ZipFile(os.path.join(exported[1], "embedding.torchscript.pt")) as z:
        assert not [n for n in z.namelist() if n.endswith(".debug_pkl")]
    monkeypatch.setattr(onnx_export, "_drop_debug_records", lambda path: None)
    leak = r"embedding.torchscript.pt \(member .*\.debug_pkl\) would publish a path of this machine"
    with pytest.raises(PublishError, match=leak):
        export_model(experiment[0], tmp_path / "model", onnx=True)
    assert not (tmp_path / "model").exists() and os.listdir(tmp_path) == []  # no temp folder left either
