"""Just enough of the ONNX protobuf wire format for the validation gate, without ``onnx``.

The spoke does not depend on the ``onnx`` package (it brings a compiler
toolchain's worth of code to an air-gapped site for one field), and
onnxruntime's Python API does not expose a model's ``opset_import``. Two
small jobs remain, both on the wire format (varints and length-delimited
fields, https://protobuf.dev/programming-guides/encoding/):

* :func:`read_opsets` reads the ``opset_import`` entries (field 8) of a
  ``ModelProto`` from a file, streaming: every other top-level field (the
  graph, possibly gigabytes of weights) is skipped by seeking past it.
* :func:`identity_model` writes a one-node ``Identity`` model stamped with
  a given default-domain opset, so that :mod:`airlock.node.runtime._runtime` can ask
  onnxruntime itself which opsets it accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from airlock.bundles.errors import GateError

DEFAULT_DOMAINS = ("", "ai.onnx")
"""Names of ONNX's default operator domain in ``opset_import``."""

_MODEL_IR_VERSION, _MODEL_GRAPH, _MODEL_OPSET_IMPORT = 1, 7, 8
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_MAX_OPSET_ENTRY = 4096
_TENSOR_FLOAT = 1


class _Truncated(Exception):
    pass


def _varint(stream: BinaryIO) -> int | None:
    """One base-128 varint; None at a clean end of stream."""
    result = shift = 0
    while True:
        byte = stream.read(1)
        if not byte:
            if shift == 0:
                return None
            raise _Truncated
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise _Truncated


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a small, fully read message."""
    import io

    stream = io.BytesIO(data)
    out: list[tuple[int, int, int | bytes]] = []
    while (key := _varint(stream)) is not None:
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value = _varint(stream)
            if value is None:
                raise _Truncated
            out.append((number, wire, value))
        elif wire == _LENGTH:
            length = _varint(stream)
            if length is None or length > len(data):
                raise _Truncated
            chunk = stream.read(length)
            if len(chunk) != length:
                raise _Truncated
            out.append((number, wire, chunk))
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if len(stream.read(size)) != size:
                raise _Truncated
        else:
            raise _Truncated
    return out


def read_opsets(path: Path) -> dict[str, int]:
    """The ``opset_import`` of an ONNX model file: domain → version (``""`` is ONNX's own).

    Raises:
        GateError: the file is not a readable ONNX ``ModelProto``.
    """
    opsets: dict[str, int] = {}
    size = Path(path).stat().st_size
    try:
        with open(path, "rb") as stream:
            while (key := _varint(stream)) is not None:
                number, wire = key >> 3, key & 7
                if wire == _VARINT:
                    if _varint(stream) is None:
                        raise _Truncated
                elif wire in (_FIXED64, _FIXED32):
                    stream.seek(8 if wire == _FIXED64 else 4, 1)
                elif wire == _LENGTH:
                    length = _varint(stream)
                    if length is None or stream.tell() + length > size:
                        raise _Truncated
                    if number == _MODEL_OPSET_IMPORT and length <= _MAX_OPSET_ENTRY:
                        domain, version = _opset_entry(stream.read(length))
                        opsets[domain] = version
                    else:
                        stream.seek(length, 1)
                else:
                    raise _Truncated
    except (_Truncated, UnicodeDecodeError):
        raise GateError(
            f"{Path(path).name} is not a readable ONNX model (malformed protobuf)",
            hint="the hub signed a file onnxruntime cannot read; report it to the hub",
        ) from None
    return {("" if d in DEFAULT_DOMAINS else d): v for d, v in opsets.items()}


def _opset_entry(data: bytes) -> tuple[str, int]:
    domain, version = "", 0
    for number, wire, value in _fields(data):
        if number == _OPSET_DOMAIN and wire == _LENGTH and isinstance(value, bytes):
            domain = value.decode("utf-8")
        elif number == _OPSET_VERSION and wire == _VARINT and isinstance(value, int):
            version = value
    return domain, version


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _encode_varint(number << 3 | _VARINT) + _encode_varint(value)
    data = value.encode("utf-8") if isinstance(value, str) else value
    return _encode_varint(number << 3 | _LENGTH) + _encode_varint(len(data)) + data


def identity_model(opset: int, ir_version: int = 8) -> bytes:
    """A serialized ``ModelProto``: ``Y = Identity(X)``, float [1], default-domain ``opset``."""
    tensor_type = _field(1, _field(1, _TENSOR_FLOAT))  # TypeProto.tensor_type.elem_type

    def value_info(name: str) -> bytes:
        return _field(1, name) + _field(2, tensor_type)

    node = _field(1, "X") + _field(2, "Y") + _field(4, "Identity")
    graph = _field(1, node) + _field(2, "probe") + _field(11, value_info("X"))
    graph += _field(12, value_info("Y"))
    opset_import = _field(_OPSET_DOMAIN, "") + _field(_OPSET_VERSION, opset)
    return (
        _field(_MODEL_IR_VERSION, ir_version)
        + _field(_MODEL_GRAPH, graph)
        + _field(_MODEL_OPSET_IMPORT, opset_import)
    )
