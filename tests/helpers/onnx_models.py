"""Tiny, valid ONNX models made with ``onnx.helper`` (no training, no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WEIGHTS_FILE = "weights.bin"


def make_onnx_model(path: Path, external_data: bool = False, seed: int = 0, width: int = 4) -> Path:
    """Writes a one-node model ``Y = X + W`` (float32, shape [1, width]) and returns its path.

    Args:
        path: The ``.onnx`` file to write; with ``external_data`` its directory
            also receives :data:`WEIGHTS_FILE` holding ``W``.
        external_data: Store the initializer outside the graph file, as large
            models exported by MLflow are.
        seed: Changes the weights, so two calls can make different bytes.
        width: Number of weights; 100_000 makes a 400 KB external-data file, enough
            for a bundle payload that spans several age chunks.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = np.arange(width, dtype=np.float32).reshape(1, width) + np.float32(seed)
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "W"], ["Y"])],
        "airlock-test-add",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, width])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    if external_data:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=WEIGHTS_FILE,
            size_threshold=0,
        )
    else:
        onnx.save_model(model, str(path))
    return path
