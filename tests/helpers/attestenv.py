"""A real in-toto supply chain for the attestation tests: officers, pipeline, hub, site.

:func:`build_attested` makes the templates once: a three-officer ceremony
(alice and bob hold the 1-of-2 layout keys), a spoke for ``plant-7`` installed
from its roots, and a hub built from its output, with the site registered and a
layout drafted at the hub, signed by alice's layout key with the officer's API
and set. Tests copy the hub and spoke templates.

:func:`record_pipeline` plays the training pipeline: it runs real commands
under ``in_toto.runlib.in_toto_run`` (train → evaluate → convert), signed with
a pipeline functionary key, the way ``in-toto-run`` would on a build machine.

Test modules import the session fixture :func:`attested` (built once per session)
and, for a hub and a site copied from it, the per-test fixtures :func:`attested_hub`,
:func:`attested_spoke` and :func:`attested_clock` (named ``hub``, ``spoke`` and
``clock`` in the tests, overriding the world's fixtures of those names).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from in_toto.runlib import in_toto_run
from securesystemslib.signer import CryptoSigner

from airlock.bundles.clock import FixedClock
from airlock.ceremony.officer import sign_layout
from airlock.hub.context import HubContext, open_hub
from airlock.hub.export import assign, export
from airlock.hub.intake import draft_layout, set_layout
from airlock.hub.sites import add_site_from_file
from airlock.hub.trust import init_hub
from airlock.spoke.site import IDENTITY_FILE, SpokeHome, init_spoke
from helpers.ceremonyflow import Flow, run_ceremony, secrets_for
from helpers.hubenv import CEREMONY_TIME, hub_secrets
from helpers.spokeenv import SITE_ID, SITE_PASSPHRASE, site_secrets

MODEL = "classifier"
ONNX_NAME = "classifier.onnx"
LAYOUT_DAYS = 30
STEPS = ("train", "evaluate", "convert")


def write_public_pem(signer: CryptoSigner, path: Path) -> Path:
    """The functionary's public key as SubjectPublicKeyInfo PEM (what in-toto tools read)."""
    path.write_bytes(
        signer._private_key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def step_signers(key: CryptoSigner, **others: CryptoSigner) -> dict[str, CryptoSigner]:
    """The functionary key of each pipeline step (``key``, unless overridden)."""
    return {step: others.get(step, key) for step in STEPS}


def ship(hub: HubContext, tmp_path: Path, versions: dict[str, str], bundle: str = "bundle") -> Path:
    """Assigns each ``family: version`` to the site and exports the site's bundle.

    Args:
        hub: The hub (a copy of the template).
        tmp_path: Where the bundle is written.
        versions: The version to assign of each model family.
        bundle: The bundle's file name under ``tmp_path``.
    """
    for family, version in versions.items():
        assign(hub, SITE_ID, family, version)
    export(hub, SITE_ID, tmp_path / bundle)
    return tmp_path / bundle


def with_policy(home: SpokeHome, text: str) -> SpokeHome:
    """``home`` reopened after appending ``text`` to its ``airlock.toml``."""
    with (home.path / "airlock.toml").open("a") as config:
        config.write(text)
    return SpokeHome(home.path, home.secrets)


def record_pipeline(
    workdir: Path,
    converted: Path,
    signers: dict[str, CryptoSigner],
    links_dir: Path,
    onnx_name: str = ONNX_NAME,
) -> Path:
    """Runs train → evaluate → convert with in_toto_run; the links land in ``links_dir``.

    ``convert`` "converts" by copying ``converted`` into the work directory —
    an ONNX file (as ``onnx_name``) or a model directory (every file of it) — so
    its link names exactly those bytes as its products.

    Args:
        workdir: The pipeline's working directory (created).
        converted: What the conversion produces.
        signers: The functionary key of each step.
        links_dir: Where the links are written (created).
        onnx_name: The name of a single converted file.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    links_dir.mkdir(parents=True, exist_ok=True)
    (workdir / "data.csv").write_text("x,y\n1,2\n")
    if converted.is_dir():
        outputs = sorted(p.name for p in converted.iterdir())
        convert = ["sh", "-c", f"cp {converted}/* ."]
    else:
        outputs, convert = [onnx_name], ["cp", str(converted), onnx_name]
    steps = [
        ("train", ["data.csv"], ["weights.txt"], ["sh", "-c", "echo trained > weights.txt"]),
        ("evaluate", ["weights.txt"], ["metrics.json"], ["sh", "-c", "echo '{}' > metrics.json"]),
        ("convert", ["weights.txt"], outputs, convert),
    ]
    with contextlib.chdir(workdir):
        for name, materials, products, command in steps:
            in_toto_run(
                name,
                materials,
                products,
                command,
                signer=signers[name],
                metadata_directory=str(links_dir),
            )
    return links_dir


@dataclass(frozen=True)
class Attested:
    """The templates (see the module docstring)."""

    flow: Flow
    hub_template: Path
    spoke_template: Path
    pipeline: CryptoSigner
    pipeline_pem: Path
    layout_unsigned: Path
    layout_signed: Path
    hub_time: dt.datetime

    @property
    def spoke_time(self) -> dt.datetime:
        """The spoke's clock: after every bundle the hub makes, before the real now."""
        return self.hub_time + dt.timedelta(minutes=5)

    def new_hub(self, dest: Path, clock: FixedClock | None = None) -> HubContext:
        """A copy of the template hub (layout set, site registered)."""
        shutil.copytree(self.hub_template, dest, symlinks=True)
        return open_hub(dest, hub_secrets, clock=clock or FixedClock(self.hub_time))

    def new_spoke(self, dest: Path, secrets: Callable[[str], str] = site_secrets) -> SpokeHome:
        """A copy of the template spoke (nothing imported)."""
        shutil.copytree(self.spoke_template, dest, symlinks=True)
        return SpokeHome(dest, secrets)

    def officer_sign(self, officer: str, layout: Path, out: Path) -> Path:
        """``officer`` signs ``layout`` with their layout key (the officer's API)."""
        sign_layout(
            layout,
            officer,
            self.flow.keys(officer),
            out,
            secrets=secrets_for(officer),
            confirm=lambda _summary: True,
            clock=FixedClock(self.hub_time),
        )
        return out


def build_attested(base: Path) -> Attested:
    """Builds the templates under ``base`` (a fresh directory)."""
    clock = FixedClock(CEREMONY_TIME)
    flow = run_ceremony(base, clock, "attest")
    hub_time = clock.now() + dt.timedelta(minutes=1)
    spoke_home = base / "spoke-template"
    init_spoke(
        spoke_home,
        SITE_ID,
        flow.out() / "image" / "1.root.json",
        flow.out() / "director" / "1.root.json",
        SITE_PASSPHRASE,
        clock=FixedClock(hub_time),
    )
    pipeline = CryptoSigner.generate_ed25519()
    pipeline_pem = write_public_pem(pipeline, base / "pipeline.pub.pem")
    hub = init_hub(base / "hub-template", flow.out(), hub_secrets, clock=FixedClock(hub_time))
    try:
        add_site_from_file(hub, spoke_home / IDENTITY_FILE)
        unsigned = base / "layout.json"
        draft_layout(
            hub,
            {step: [pipeline_pem] for step in STEPS},
            LAYOUT_DAYS,
            unsigned,
        )
        attested = Attested(
            flow, base / "hub-template", spoke_home, pipeline, pipeline_pem, unsigned,
            base / "layout.alice.json", hub_time,
        )  # fmt: skip
        attested.officer_sign("alice", unsigned, attested.layout_signed)
        set_layout(hub, attested.layout_signed)
    finally:
        hub.close()
    return attested


_TEMPLATES: list[Attested] = []


@pytest.fixture(scope="session")
def attested(tmp_path_factory: pytest.TempPathFactory) -> Attested:
    """The templates, built once per session (import this fixture into a test module)."""
    if not _TEMPLATES:
        _TEMPLATES.append(build_attested(tmp_path_factory.mktemp("attested")))
    return _TEMPLATES[0]


@pytest.fixture(name="hub")
def attested_hub(attested: Attested, tmp_path: Path) -> Iterator[HubContext]:
    """A copy of the hub with the officers' layout set."""
    opened = attested.new_hub(tmp_path / "hub")
    yield opened
    opened.close()


@pytest.fixture(name="spoke")
def attested_spoke(attested: Attested, tmp_path: Path) -> Iterator[SpokeHome]:
    """A copy of the site, nothing imported."""
    home = attested.new_spoke(tmp_path / "spoke")
    yield home
    home.engine.dispose()


@pytest.fixture(name="clock")
def attested_clock(attested: Attested) -> FixedClock:
    """The site's clock."""
    return FixedClock(attested.spoke_time)
