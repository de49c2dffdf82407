"""Model intake: check a model path, stage a hashed copy, validate the staged ONNX graph.

A model is one ``.onnx`` file, or a flat directory holding exactly one
``.onnx`` file and its external-data files. Nested directories, links and
special files are refused. Every file is copied (hashing as it goes) into a
staging directory inside the hub home, and ``onnx.checker.check_model`` runs
on the *staged* copy, so the bytes validated are the bytes released.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from airlock.bundles.errors import MissingFileError, UsageError
from airlock.bundles.models import ModelFile, check_name
from airlock.hub.repos._blobstore import copy_hashing

ONNX_SUFFIX = ".onnx"


@dataclass(frozen=True)
class StagedModel:
    """Hashed copies of a model's files in a staging directory."""

    directory: Path
    files: tuple[ModelFile, ...]

    def staged_path(self, file: ModelFile) -> Path:
        """Where the staged copy of ``file`` is."""
        return self.directory / file.filename


def _regular_file(path: Path) -> None:
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        raise UsageError(
            f"{path} is a symbolic link",
            hint="pass the real files; links are refused so that what is released is explicit",
        )
    if stat.S_ISDIR(mode):
        raise UsageError(
            f"{path} is a directory inside the model directory",
            hint="a model directory must be flat: the .onnx file and its external-data files",
        )
    if not stat.S_ISREG(mode):
        raise UsageError(f"{path} is not a regular file")


def model_sources(path: Path) -> tuple[list[Path], Path]:
    """The files that make up the model at ``path`` and which one is the ONNX graph.

    Raises:
        NotFoundError: the path does not exist.
        UsageError: it is a link, holds a nested directory, has no or several
            ``.onnx`` files, or a file name Airlock cannot use as a target
            path segment.
    """
    if not path.exists() and not path.is_symlink():
        raise MissingFileError(
            f"{path} does not exist", hint="pass an .onnx file or a model directory"
        )
    if path.is_symlink():
        _regular_file(path)
    if path.is_dir():
        sources = sorted(path.iterdir())
        if not sources:
            raise UsageError(f"{path} is empty", hint="put the .onnx file in the directory")
        for source in sources:
            _regular_file(source)
            check_name("file name", source.name)
        graphs = [s for s in sources if s.name.endswith(ONNX_SUFFIX)]
        if len(graphs) != 1:
            raise UsageError(
                f"{path} holds {len(graphs)} .onnx files; exactly one is needed",
                hint="put one model (its .onnx file and external-data files) per directory",
            )
        return sources, graphs[0]
    _regular_file(path)
    if not path.name.endswith(ONNX_SUFFIX):
        raise UsageError(
            f"{path} is not an .onnx file",
            hint="pass an .onnx file, or a directory with one .onnx file and its data files",
        )
    check_name("file name", path.name)
    return [path], path


def validate_onnx(path: Path) -> None:
    """Runs the ONNX checker on a graph file (path form: external data is not loaded).

    Raises:
        UsageError: the file is not a valid ONNX model.
    """
    import onnx.checker  # keep onnx out of CLI start-up

    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise UsageError(
            f"{path.name} is not a valid ONNX model: {exc}".strip(),
            hint="export the model again, with its external-data files next to it",
        ) from None


def stage_model(
    path: Path, staging_dir: Path, extras: Mapping[str, tuple[Path, str]] | None = None
) -> StagedModel:
    """Copies and hashes the model at ``path`` into ``staging_dir``, then validates it.

    Args:
        path: An ``.onnx`` file or a flat model directory.
        staging_dir: An empty directory on the blob store's file system.
        extras: Other files of the version, by target file name: (source path,
            kind) — a validation set (``validation``) or in-toto files
            (``layout``, ``link``).

    Raises:
        UsageError: the path breaks the layout rules, the graph is invalid, or
            an extra file is missing, not a regular file, or clashes with a model file.
    """
    sources, graph = model_sources(Path(path))
    files = []
    for source in sources:
        sha256, length = copy_hashing(source, staging_dir / source.name)
        files.append(
            ModelFile(filename=source.name, sha256=sha256, length=length, primary=source == graph)
        )
    validate_onnx(staging_dir / graph.name)
    for filename, (source, kind) in sorted((extras or {}).items()):
        check_name("file name", filename)
        if (staging_dir / filename).exists():
            raise UsageError(
                f"{filename} is both a model file and a {kind} file",
                hint="give the validation set or attestation another file name",
            )
        if not Path(source).exists():
            raise MissingFileError(f"{kind} file {source} does not exist")
        _regular_file(Path(source))
        sha256, length = copy_hashing(Path(source), staging_dir / filename)
        files.append(ModelFile(filename=filename, sha256=sha256, length=length, kind=kind))
    return StagedModel(directory=staging_dir, files=tuple(files))
