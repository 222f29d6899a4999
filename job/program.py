"""Paddle program files and their parameter files: the one reader and writer of both formats.

A program file (``inference.pdmodel``) is a ``paddle.base.proto.framework_pb2.ProgramDesc``
protobuf. ``program_desc`` parses one for reading (cached per file version: treat it as
read-only), ``read_program`` for rewriting (a fresh copy) and ``write_program`` writes it
back atomically. The facts the job reads from a program: ``program_ops`` (op types),
``program_inputs`` (feed order), ``param_names`` (the persistable tensors, in the order
the parameter file holds them), ``is_quantized`` and ``model_params`` (weight count).

A parameter file (``inference.pdiparams``) is what Paddle's ``save_combine`` writes: one
serialized LoDTensor per persistable variable of the program, in sorted-name order (the
order the inference loader reads them), each

    uint32 LoDTensor version | uint64 LoD levels, then per level uint64 bytes + offsets |
    uint32 Tensor version | int32 TensorDesc size | TensorDesc protobuf | raw data

(little-endian). ``read_params`` and ``write_params`` read and write it tensor by tensor
(``ParamTensor``), byte for byte; ``program_params`` pairs the tensors with the names the
program gives them.

A file that is not what it should be (truncated, another format, missing) raises
``job.errors.InputError`` naming the file, in one line. Paddle (for ``framework_pb2``) and
numpy are imported inside the functions that need them: importing this module is cheap.
"""

from __future__ import annotations

import functools
import os
import secrets
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from job.errors import InputError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "QUANT_OPS",
    "ParamTensor",
    "ParamsMismatchError",
    "is_quantized",
    "model_params",
    "op_args",
    "param_names",
    "program_desc",
    "program_inputs",
    "program_ops",
    "program_params",
    "read_params",
    "read_program",
    "write_params",
    "write_program",
]

# Op types that make a program quantized: the QDQ format ACT saves with onnx_format, and
# the older fake-quant format.
QUANT_OPS = (
    "quantize_linear",
    "dequantize_linear",
    "fake_quantize_abs_max",
    "fake_quantize_moving_average_abs_max",
    "fake_channel_wise_quantize_abs_max",
    "fake_quantize_dequantize_moving_average_abs_max",
    "fake_channel_wise_quantize_dequantize_abs_max",
    "fake_quantize_range_abs_max",
    "fake_dequantize_max_abs",
    "fake_channel_wise_dequantize_max_abs",
)

# framework.proto's VarType.Type values of variables that are persistable but not saved:
# FEED_MINIBATCH, FETCH_LIST, RAW.
_NOT_SAVED = (9, 10, 17)
# Bytes per element of framework.proto's VarType data types, and the numpy types of those
# the job reads as arrays.
_DTYPE_BYTES = {0: 1, 1: 2, 2: 4, 3: 8, 4: 2, 5: 4, 6: 8, 20: 1, 21: 1, 22: 2, 23: 8, 24: 16}
_NUMPY_DTYPES = {2: "<i4", 3: "<i8", 5: "<f4", 6: "<f8", 21: "i1", 20: "u1"}
_NO_LOD = b"\0" * 12  # LoDTensor version 0, no LoD level


class HasProgram(Protocol):
    """A model folder (``job.model.ModelFiles``): anything with a ``program`` path."""

    @property
    def program(self) -> Path: ...


Source = str | os.PathLike | HasProgram  # a program file, or a model folder's


def _framework_pb2():
    from job.runtime import paddle  # zlib before paddle: see job.runtime

    return paddle.base.proto.framework_pb2


def _path(source: Source) -> Path:
    return Path(getattr(source, "program", source))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _parse(path: Path, raw: bytes):
    from google.protobuf.message import DecodeError

    desc = _framework_pb2().ProgramDesc()
    try:
        desc.ParseFromString(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:  # the pure-Python and C++ protobufs differ
        raise InputError(f"{path}: not a Paddle program file ({_one_line(exc)})") from None
    if not desc.blocks:  # an empty file parses as an empty program
        raise InputError(f"{path}: not a Paddle program file (no block)")
    return desc


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc.__class__.__name__})") from None


def read_program(source: Source):
    """The ``ProgramDesc`` of a program file, freshly parsed (the caller may change it)."""
    path = _path(source)
    return _parse(path, _read_bytes(path, "program"))


def program_desc(source: Source):
    """The ``ProgramDesc`` of a program file, cached per file version (path, size,
    modification time, inode): shared, so read-only."""
    path = _path(source)
    try:
        stat = path.stat()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the program ({exc.strerror or exc.__class__.__name__})") from None
    return _cached(str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)


@functools.lru_cache(maxsize=8)
def _cached(path: str, mtime_ns: int, size: int, inode: int):
    return read_program(path)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``:
    a reader never sees half a file. The file keeps the mode of the one it replaces."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if path.exists():
            os.chmod(temp, path.stat().st_mode & 0o7777)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_program(path: str | os.PathLike, desc) -> None:
    """Write a ``ProgramDesc`` to ``path`` (atomically)."""
    _write_atomic(Path(path), desc.SerializeToString())
    _cached.cache_clear()  # the inode changed anyway; this also frees the old versions


def _desc(program: Any):
    """A ``ProgramDesc`` given as itself, a path or a model folder."""
    return program if hasattr(program, "blocks") else program_desc(program)


def op_args(params) -> dict[str, list[str]]:
    """An op's inputs or outputs (``op.inputs``/``op.outputs`` of an ``OpDesc``) by parameter name."""
    return {v.parameter: list(v.arguments) for v in params}


def program_ops(program: Any) -> Counter[str]:
    """Op types of a program (every block), counted. ``program``: a ``ProgramDesc``, a
    program file or a model folder."""
    return Counter(op.type for block in _desc(program).blocks for op in block.ops)


def program_inputs(program: Any) -> list[str]:
    """Names of the program's inputs, in feed order (the feed ops' ``col``)."""
    feeds = []
    for op in _desc(program).blocks[0].ops:
        if op.type == "feed":
            column = next((a.i for a in op.attrs if a.name == "col"), 0)
            name = next(v.arguments[0] for v in op.outputs if v.parameter == "Out")
            feeds.append((column, name))
    return [name for _, name in sorted(feeds)]


def is_quantized(program: Any) -> bool:
    """Whether the program holds quantization ops (``QUANT_OPS``: QDQ pairs or fake-quant ops)."""
    ops = program_ops(program)
    return any(op in ops for op in QUANT_OPS)


def param_names(program: Any) -> list[str]:
    """The persistable tensors of the program's main block, in the order its parameter
    file holds them (sorted by name, as ``save_combine`` writes and the loader reads)."""
    block = _desc(program).blocks[0]
    return sorted(v.name for v in block.vars if v.persistable and v.type.type not in _NOT_SAVED)


def model_params(program: Any) -> int:
    """Weights in a program: elements of its persistable float tensors, quantization
    scales and zero points left out (so quantized and float programs of the same network
    count the same)."""
    total = 0
    seen = set()
    for block in _desc(program).blocks:
        for var in block.vars:
            if not var.persistable or var.name in seen or var.name in ("feed", "fetch"):
                continue
            if "scale" in var.name or "zero_point" in var.name or var.name.endswith("@state"):
                continue
            tensor = var.type.lod_tensor.tensor
            dims = list(tensor.dims)
            if not dims or any(d < 0 for d in dims):
                continue
            seen.add(var.name)
            total += _numel(dims)
    return total


def _numel(dims: Iterable[int]) -> int:
    count = 1
    for dim in dims:
        count *= dim
    return count


class ParamsMismatchError(InputError):
    """A well-formed parameter file that does not hold the parameters its program declares."""


@dataclass
class ParamTensor:
    """One tensor of a parameter file: its ``TensorDesc`` (data type, dims), its raw
    data, and the LoD part and Tensor version as read, so that writing it back gives the
    same bytes."""

    desc: Any  # framework_pb2.VarType.TensorDesc
    data: bytes
    lod: bytes = _NO_LOD  # uint32 LoDTensor version, uint64 level count, the levels
    version: int = 0  # uint32 Tensor version

    @property
    def numpy_dtype(self) -> str | None:
        """The numpy type of the data, or None for a type the job does not read."""
        return _NUMPY_DTYPES.get(self.desc.data_type)

    def array(self) -> np.ndarray:
        """The data as a read-only numpy array of the tensor's shape."""
        import numpy as np

        if self.numpy_dtype is None:
            raise ValueError(f"tensor data type {self.desc.data_type} is not read as an array")
        return np.frombuffer(self.data, dtype=self.numpy_dtype).reshape(list(self.desc.dims))

    @classmethod
    def from_array(cls, values: np.ndarray) -> ParamTensor:
        """A tensor (no LoD) holding ``values``."""
        import numpy as np

        data_type = next((k for k, v in _NUMPY_DTYPES.items() if np.dtype(v) == values.dtype), None)
        if data_type is None:
            raise ValueError(f"no Paddle data type for numpy {values.dtype.str}")
        desc = _framework_pb2().VarType.TensorDesc(data_type=data_type, dims=list(values.shape))
        return cls(desc, values.tobytes())  # C order, whatever the array's layout


def read_params(path: str | os.PathLike) -> list[ParamTensor]:
    """The tensors of a combined parameter file, in file order."""
    from google.protobuf.message import DecodeError

    path = Path(path)
    raw = _read_bytes(path, "parameter file")
    tensor_desc = _framework_pb2().VarType.TensorDesc
    tensors, at = [], 0
    try:
        while at < len(raw):
            start = at
            at += 4  # LoDTensor version
            (levels,) = struct.unpack_from("<Q", raw, at)
            at += 8
            for _ in range(levels):
                (size,) = struct.unpack_from("<Q", raw, at)
                at += 8 + size
            lod_end = at
            version, desc_size = struct.unpack_from("<Ii", raw, at)
            at += 8
            if desc_size < 0 or at + desc_size > len(raw):
                raise ValueError(f"tensor {len(tensors)}: a description of {desc_size} bytes past the end")
            desc = tensor_desc()
            desc.ParseFromString(raw[at : at + desc_size])
            at += desc_size
            if desc.data_type not in _DTYPE_BYTES:
                raise ValueError(f"tensor {len(tensors)}: unknown data type {desc.data_type}")
            size = _numel(desc.dims) * _DTYPE_BYTES[desc.data_type]
            if size < 0 or at + size > len(raw):
                raise ValueError(f"tensor {len(tensors)}: {size} bytes of data, {len(raw) - at} left in the file")
            tensors.append(ParamTensor(desc, raw[at : at + size], raw[start:lod_end], version))
            at += size
    except (struct.error, DecodeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{path}: not a Paddle parameter file ({_one_line(exc)})") from None
    return tensors


def write_params(path: str | os.PathLike, tensors: Iterable[ParamTensor] | Mapping[str, ParamTensor]) -> None:
    """Write a combined parameter file (atomically): ``tensors`` in the order given, or,
    given by name, in the order the loader reads them (sorted by name)."""
    if isinstance(tensors, Mapping):
        tensors = [tensors[name] for name in sorted(tensors)]
    out = bytearray()
    for tensor in tensors:
        text = tensor.desc.SerializeToString()
        out += tensor.lod + struct.pack("<Ii", tensor.version, len(text)) + text + tensor.data
    _write_atomic(Path(path), bytes(out))


def program_params(program: Any, path: str | os.PathLike) -> dict[str, ParamTensor]:
    """The tensors of the parameter file ``path`` by the names the program gives them
    (``param_names``). Raises ``InputError`` if the file does not hold one tensor per
    name, of the element count the program declares (where it declares a fixed shape):
    ``ParamsMismatchError`` if it does not, ``InputError`` if it is no parameter file."""
    desc = _desc(program)
    names = param_names(desc)
    tensors = read_params(path)
    if len(tensors) != len(names):
        raise ParamsMismatchError(f"{path}: {len(tensors)} tensors, but the program declares {len(names)} parameters")
    declared = {v.name: list(v.type.lod_tensor.tensor.dims) for v in desc.blocks[0].vars}
    for name, tensor in zip(names, tensors, strict=True):
        dims = declared[name]
        if all(d > 0 for d in dims) and _numel(dims) != _numel(tensor.desc.dims):
            raise ParamsMismatchError(
                f"{path}: the tensor read as {name} has shape {list(tensor.desc.dims)}, the program declares {dims}"
            )
    return dict(zip(names, tensors, strict=True))
