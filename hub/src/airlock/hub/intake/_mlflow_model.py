"""What the hub keeps of a downloaded MLflow model: the ONNX graph, external data, signature.

An MLflow model directory holds ``MLmodel`` (flavors, signature, ids),
environment files and the flavor's data. For the ``onnx`` flavor the data is
one graph file (``model.onnx``) and, for large models, the external-data
files the graph names in its tensors' ``location`` entries. Only those are
kept: :func:`collect_onnx` moves them into a flat directory that
:func:`~airlock.hub.intake._releases.release_model` takes as is
(the graph is checked there, on the staged copy).

Signatures go into signed metadata, which is canonical JSON: no floating
point numbers (:func:`canonical_safe`).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airlock.bundles.canonical import canonical_safe
from airlock.bundles.errors import UsageError
from airlock.bundles.models import check_name

MLMODEL = "MLmodel"
ONNX_FLAVOR = "onnx"
DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class OnnxModel:
    """A flat directory with one ONNX graph and its external data, and what it declares."""

    directory: Path
    graph: str
    files: tuple[str, ...]
    opset: int | None
    signature: dict[str, Any] | None


def _plain_file(directory: Path, name: str, what: str) -> Path:
    try:
        check_name(f"{what} file name", name)
    except UsageError:
        raise UsageError(
            f"the model's {what} file {name!r} is not a plain file name in its directory",
            hint="Airlock releases a flat directory: save the graph and its data side by side",
        ) from None
    path = directory / name
    if not path.exists() or not stat.S_ISREG(path.lstat().st_mode):
        raise UsageError(
            f"the model's {what} file {name} is missing from the MLflow artifacts",
            hint="log the model again with mlflow.onnx.log_model",
        )
    return path


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor of a graph, its nodes' attributes and their subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


def external_locations(proto: Any) -> list[str]:
    """The external-data file names a model's tensors point at, sorted, without duplicates."""
    import onnx

    names: set[str] = set()
    for tensor in _tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            names.update(e.value for e in tensor.external_data if e.key == "location")
    return sorted(names)


def _dtype(elem_type: int) -> str:
    import onnx

    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type).name)
    except (KeyError, ValueError, TypeError):
        return str(onnx.TensorProto.DataType.Name(elem_type)).lower()


def _value_info(info: Any) -> dict[str, Any]:
    kind = info.type.WhichOneof("value")
    if kind != "tensor_type":
        return {"name": info.name, "type": f"onnx:{kind}"}
    tensor = info.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    return {
        "name": info.name,
        "type": "tensor",
        "tensor-spec": {"dtype": _dtype(tensor.elem_type), "shape": shape},
    }


def onnx_signature(proto: Any) -> dict[str, Any]:
    """Inputs and outputs as the graph declares them (initializers are not inputs)."""
    initializers = {t.name for t in proto.graph.initializer}
    return {
        "from": "onnx",
        "inputs": [_value_info(i) for i in proto.graph.input if i.name not in initializers],
        "outputs": [_value_info(o) for o in proto.graph.output],
    }


def _mlflow_signature(mlmodel: Any) -> dict[str, Any] | None:
    if mlmodel.signature is None:
        return None
    result: dict[str, Any] = {"from": "mlflow"}
    for key, value in mlmodel.signature.to_dict().items():
        result[key] = json.loads(value) if isinstance(value, str) else value
    return dict(canonical_safe(result))


def collect_onnx(download_dir: Path, out_dir: Path) -> OnnxModel:
    """Moves the ONNX flavor's graph and external data out of an MLflow model directory.

    Args:
        download_dir: A downloaded MLflow model (``MLmodel`` at its top).
        out_dir: A new directory (same file system) that receives the files.

    Returns:
        The flat model; its signature is MLflow's when the model was logged
        with one, else the graph's own inputs and outputs.

    Raises:
        UsageError: no ``MLmodel`` or no ``onnx`` flavor, files missing or in subdirectories.
    """
    import onnx
    from mlflow.models import Model

    if not (download_dir / MLMODEL).is_file():
        raise UsageError(
            "the registered version holds no MLmodel file: it is not an MLflow model",
            hint="register a model logged with mlflow.onnx.log_model",
        )
    mlmodel = Model.load(str(download_dir / MLMODEL))
    flavor = (mlmodel.flavors or {}).get(ONNX_FLAVOR)
    if not isinstance(flavor, dict) or not flavor.get("data"):
        flavors = ", ".join(sorted(mlmodel.flavors or {})) or "none"
        raise UsageError(
            f"the registered version is not an ONNX model (flavors: {flavors})",
            hint="convert it to ONNX and log it with mlflow.onnx.log_model",
        )
    graph_path = _plain_file(download_dir, str(flavor["data"]), "ONNX graph")
    try:
        proto = onnx.load(str(graph_path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise UsageError(
            f"{graph_path.name} is not a valid ONNX model: {exc}",
            hint="export the model again and log it with mlflow.onnx.log_model",
        ) from None
    names = [graph_path.name]
    names += [_plain_file(download_dir, n, "external-data").name for n in external_locations(proto)]
    out_dir.mkdir()
    for name in names:
        (download_dir / name).replace(out_dir / name)
    opset = next((o.version for o in proto.opset_import if o.domain in DEFAULT_DOMAINS), None)
    return OnnxModel(
        directory=out_dir,
        graph=graph_path.name,
        files=tuple(names),
        opset=None if opset is None else int(opset),
        signature=_mlflow_signature(mlmodel) or onnx_signature(proto),
    )
