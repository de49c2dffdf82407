"""The benchmark's models (a valid ONNX graph + external data), and reading files warm."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

MiB = 1 << 20
ROW_BYTES = 16384 * 4  # one row of the float32 weight matrix
TINY_BYTES = ROW_BYTES  # the model that measures the fixed cost: one row (64 KiB)


def build_model(directory: Path, size_bytes: int) -> int:
    """Writes a valid ONNX model with external data (``model.onnx`` + ``weights.bin``).

    One MatMul with a float32 weight matrix of ``size_bytes`` (rounded down to whole
    64 KiB rows) stored as external data: random bytes (nothing compresses), written
    1 MiB at a time.

    Returns:
        The total size of the model's files in bytes.
    """
    import onnx
    from onnx import TensorProto, helper

    directory.mkdir(parents=True)
    columns = ROW_BYTES // 4
    rows = max(size_bytes // ROW_BYTES, 1)
    weights_bytes = rows * ROW_BYTES
    with open(directory / "weights.bin", "wb") as out:
        for offset in range(0, weights_bytes, MiB):
            out.write(os.urandom(min(MiB, weights_bytes - offset)))
    weights = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[rows, columns])
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", weights_bytes)):
        weights.external_data.add(key=key, value=str(value))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "bench-matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, columns])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnx writes IR 14 by default, which the site's onnxruntime refuses
    onnx.save_model(model, str(directory / "model.onnx"))
    onnx.checker.check_model(str(directory / "model.onnx"))
    return tree_size(directory)


def tree_size(path: Path) -> int:
    """Bytes in the regular files under ``path``."""
    return sum(p.stat().st_size for p in files_under(path))


def files_under(path: Path) -> Iterator[Path]:
    """``path`` itself when it is a file, else every regular file below it."""
    if path.is_file():
        yield path
    else:
        yield from sorted(p for p in path.rglob("*") if p.is_file())


def read_through(path: Path) -> None:
    """Reads every file under ``path`` once (1 MiB buffers), to have it in the page cache."""
    buf = bytearray(MiB)
    for file in files_under(path):
        with open(file, "rb", buffering=0) as src:
            while src.readinto(buf):
                pass


def chunk_count(model_bytes: int) -> int:
    """An upper bound of the 1 MiB chunks a model of ``model_bytes`` (two files) makes."""
    return -(-model_bytes // MiB) + 1


def volume_size_for(model_bytes: int, volumes: int) -> int:
    """A ``--volume-size`` (bytes) that cuts the model into about ``volumes`` data volumes.

    A chunk never spans volumes, so a volume holds whole 1 MiB chunks, each with a
    512-byte tar header and 16 bytes of age tag per 64 KiB; plus per volume the age
    header, the ``airlock-volume.json`` entry and the tar end blocks (64 KiB is ample).
    """
    per_volume = -(-chunk_count(model_bytes) // volumes)
    return per_volume * (MiB + 1024) + 64 * 1024
