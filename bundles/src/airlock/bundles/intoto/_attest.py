"""Verifying a model version's in-toto attestations: one workflow for the hub and the spoke.

:func:`verify_version` reads as numbered steps, each failing closed with an
:class:`~airlock.bundles.errors.AttestationError` that says which file or step failed:

1. The layout parses (legacy in-toto Metablock).
2. A threshold of the layout keys the trusted Image root anchors signed it;
   exactly those keys are passed on to in-toto.
3. It has not expired (by the caller's clock) and does not outlive the
   anchored layout role.
4. Links: each is named ``<step>.<keyid8>.link`` for a step of the layout and
   one of that step's functionaries, is signed by that functionary, and names
   its step; every step has its threshold of links.
5. No model file has a name the rules would not see (see
   :data:`airlock.bundles.intoto._layout.RESERVED_PATTERNS`).
6. A clean directory is laid out under the caller's scratch area: the model
   files under their target names (hard links, so nothing is copied) and,
   beside it, the links.
7. ``in_toto.verifylib.in_toto_verify`` runs *in* that directory (its
   inspection records the current directory): signatures, expiry again (by the
   system clock), links, thresholds, artifact rules, the inspection.

Steps 4 and 5 duplicate part of in-toto's own checks so that the error names
the file at fault; step 7 is the authority.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from in_toto.models.link import Link
from in_toto.models.metadata import Metablock, Metadata
from in_toto.verifylib import in_toto_verify
from securesystemslib.signer import Key

from airlock.bundles.errors import AttestationError
from airlock.bundles.intoto import _layout as layouts

LINK_NAME = re.compile(r"(?P<step>[A-Za-z0-9][A-Za-z0-9_-]*)\.(?P<keyid>[0-9a-f]{8})\.link")
WORK_DIR = "work"
LINKS_DIR = "links"

_IN_TOTO_LOGGER = "in_toto"


@dataclass(frozen=True)
class Anchor:
    """The layout keys, threshold and role expiry a trusted Image root anchors."""

    keys: Mapping[str, Key]
    threshold: int
    expires: dt.datetime


@dataclass
class AttestationReport:
    """What verified: for audit entries and command output."""

    ref: str
    layout_sha256: str
    layout_expires: str
    signed_by: list[str]
    links: list[str]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ref": self.ref,
            "layout_sha256": self.layout_sha256,
            "layout_expires": self.layout_expires,
            "signed_by": self.signed_by,
            "links": self.links,
            "warnings": self.warnings,
        }


def parse_link(filename: str, data: bytes) -> Metadata:
    """Parses a link file (legacy or DSSE) named ``<step>.<keyid8>.link``.

    Raises:
        AttestationError: a bad name, not JSON, or not an in-toto link.
    """
    if not LINK_NAME.fullmatch(filename):
        raise AttestationError(
            f"{filename} is not named like an in-toto link (<step>.<keyid8>.link)",
            hint="keep the file names in-toto-run gives its links",
        )
    try:
        md = Metadata.from_dict(json.loads(data))
        payload = md.get_payload()
    except Exception as exc:
        raise AttestationError(
            f"{filename} is not an in-toto link ({type(exc).__name__})",
            hint="pass the .link files in-toto-run wrote, unchanged",
        ) from None
    if not isinstance(payload, Link):
        raise AttestationError(f"{filename} is an in-toto layout, not a link")
    return md


def check_links(layout_md: Metablock, links: Mapping[str, bytes]) -> None:
    """Step 4 of :func:`verify_version`: names, functionaries, signatures, thresholds.

    Raises:
        AttestationError: the first problem found.
    """
    layout = layout_md.signed
    steps = {step.name: step for step in layout.steps}
    signed_by: dict[str, set[str]] = {name: set() for name in steps}
    for filename, data in sorted(links.items()):
        md = parse_link(filename, data)
        match = LINK_NAME.fullmatch(filename)
        assert match is not None
        step_name, prefix = match["step"], match["keyid"]
        step = steps.get(step_name)
        if step is None:
            raise AttestationError(
                f"{filename} is a link for step {step_name!r}, which the layout does not have",
                hint=f"the layout's steps are {', '.join(steps)}",
            )
        keyids = [k for k in step.pubkeys if k.startswith(prefix)]
        if not keyids:
            raise AttestationError(
                f"{filename} is signed by key {prefix}…, which is not a functionary of "
                f"step {step_name!r}",
                hint=f"the step's functionaries are "
                f"{', '.join(k[:8] for k in step.pubkeys)}; sign the link with one of "
                "their keys, or have the officers sign a layout that names this key",
            )
        if md.get_payload().name != step_name:
            raise AttestationError(
                f"{filename} records step {md.get_payload().name!r}, not {step_name!r}",
                hint="the link was renamed; use the file in-toto-run wrote",
            )
        if not any(_signed(md, layout.keys.get(keyid)) for keyid in keyids):
            raise AttestationError(
                f"{filename} is not validly signed by the functionary key {keyids[0][:8]}… "
                f"of step {step_name!r}",
                hint="the link was altered or signed with another key; record it again",
            )
        signed_by[step_name].add(prefix)
    for name, step in steps.items():
        if len(signed_by[name]) < step.threshold:
            expected = ", ".join(layouts.link_filename(name, k) for k in step.pubkeys)
            raise AttestationError(
                f"step {name!r} needs {step.threshold} link(s) signed by its functionaries; "
                f"found {len(signed_by[name])}",
                hint=f"expected a file like {expected}",
            )


def _signed(md: Metadata, key: dict[str, Any] | None) -> bool:
    if key is None:
        return False
    try:
        md.verify_signature(key)
    except Exception:
        return False
    return True


def check_file_names(names: list[str]) -> None:
    """Step 5 of :func:`verify_version`.

    Raises:
        AttestationError: a model file's name matches a reserved pattern.
    """
    for name in names:
        for pattern in layouts.RESERVED_PATTERNS:
            if fnmatch.fnmatch(name, pattern):
                raise AttestationError(
                    f"model file {name!r} matches {pattern!r}, a name the in-toto rules "
                    "do not check",
                    hint="rename the file; attestation files and in-toto's excluded names "
                    "cannot be model files",
                )


def _place(source: Path, dest: Path) -> None:
    """Hard-links ``source`` at ``dest`` (copies across file systems)."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


@contextlib.contextmanager
def _quiet_in_toto() -> Iterator[list[str]]:
    """Collects in-toto's log warnings instead of printing them; restores the logger after."""
    logger = logging.getLogger(_IN_TOTO_LOGGER)
    collected: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collected.append(record.getMessage())

    saved = [(handler, handler.level) for handler in logger.handlers]
    saved_level = logger.level
    collector = Collect(logging.WARNING)
    for handler, _level in saved:
        handler.setLevel(logging.CRITICAL + 1)
    logger.addHandler(collector)
    logger.setLevel(logging.WARNING)
    try:
        yield collected
    finally:
        logger.removeHandler(collector)
        logger.setLevel(saved_level)
        for handler, level in saved:
            handler.setLevel(level)


def _translate(exc: Exception, ref: str) -> AttestationError:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    item = re.search(r"of item '([^']+)'", text)
    where = f" (step or inspection {item[1]!r})" if item else ""
    first = lines[0] if lines else type(exc).__name__
    return AttestationError(
        f"the supply chain of {ref} does not verify{where}: {type(exc).__name__}: {first}",
        hint="the shipped files are not the ones the pipeline converted and the hub packaged, "
        "or a link is missing or wrong; do not use this version and tell the hub operator",
    )


def run_in_toto(
    ref: str, layout_md: Metablock, keys: Mapping[str, dict[str, Any]], directory: Path
) -> list[str]:
    """Step 7 of :func:`verify_version`: ``in_toto_verify`` inside ``directory/work``.

    Returns:
        in-toto's warnings (e.g. a recorded command differing from the expected one).

    Raises:
        AttestationError: in-toto refused.
    """
    directory = Path(directory).resolve()
    with _quiet_in_toto() as warnings, contextlib.chdir(directory / WORK_DIR):
        try:
            in_toto_verify(
                layout_md,
                dict(keys),
                link_dir_path=str(directory / LINKS_DIR),
                persist_inspection_links=False,
            )
        except Exception as exc:
            raise _translate(exc, ref) from None
    return warnings


def verify_version(
    ref: str,
    layout_data: bytes,
    links: Mapping[str, Path],
    model_files: Mapping[str, Path],
    anchor: Anchor,
    now: dt.datetime,
    directory: Path,
) -> AttestationReport:
    """Verifies one model version's attestations (see the module docstring).

    Args:
        ref: ``name@version``, for messages.
        layout_data: The bytes of the version's ``root.layout``.
        links: Link file name → where its bytes are.
        model_files: Target file name → where the model file's bytes are.
        anchor: The layout keys of the trusted Image root.
        now: The caller's time (the spoke's or hub's clock).
        directory: A new, empty directory to verify in (removed by the caller).

    Raises:
        AttestationError: the attestations do not verify.
    """
    what = f"the layout of {ref}"
    layout_md = layouts.parse_layout(layout_data, what)  # 1
    keys = layouts.signing_keys(layout_md, anchor.keys, anchor.threshold, what)  # 2
    layouts.check_expiry(layout_md, now, anchor.expires, what)  # 3
    directory = Path(directory).resolve()  # in-toto runs after a chdir: no relative paths
    link_bytes = {name: Path(path).read_bytes() for name, path in links.items()}
    check_links(layout_md, link_bytes)  # 4
    check_file_names(sorted(model_files))  # 5
    work, link_dir = directory / WORK_DIR, directory / LINKS_DIR  # 6
    work.mkdir(parents=True)
    link_dir.mkdir()
    for name, path in model_files.items():
        _place(Path(path), work / name)
    for name, data in link_bytes.items():
        (link_dir / name).write_bytes(data)
    warnings = run_in_toto(ref, layouts.parse_layout(layout_data, what), keys, directory)  # 7
    return AttestationReport(
        ref=ref,
        layout_sha256=layouts.layout_sha256(layout_data),
        layout_expires=str(layout_md.signed.expires),
        signed_by=sorted(keys),
        links=sorted(links),
        warnings=warnings,
    )
