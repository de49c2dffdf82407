"""Model intake from a real MLflow registry (SQLite, local artifacts) into a real hub.

One registry per session (logging is slow): ``iris`` 1 (@challenger) and 2
(@champion, its run tagged with the training data's SHA-256) and
``big-adder`` 1 (external data). Tests that move aliases use their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helpers.hubenv import HUB_PASSPHRASE, tree_digest
from helpers.mlflowenv import CHAMPION, EXTERNAL, IRIS, Registry, make_registry, tracking

from airlock.bundles.audit import AuditLog
from airlock.bundles.cli import main
from airlock.bundles.errors import ConflictError, MediaError, NotFoundError, UsageError
from airlock.bundles.release import Compatibility, ValidationSpec
from airlock.ceremony.minimal import CeremonyResult
from airlock.hub import intake as mlflow_intake
from airlock.hub.catalog import ReleaseParts, list_models, release_parts
from airlock.hub.context import HubContext, load_image_repo
from airlock.hub.intake import import_model, parse_model_uri, redact_uri
from airlock.hub.repos import verify_delegations

# Variables by which MLflow would decide on its own that telemetry is off.
TELEMETRY_OPT_OUTS = {
    "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS",
    "GITLAB_CI", "JENKINS_URL", "BUILDKITE", "CIRCLECI", "TRAVIS", "TF_BUILD",
}  # fmt: skip


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The session's MLflow registry (see the module docstring)."""
    return make_registry(tmp_path_factory.mktemp("mlflow"))


def signed_custom(hub: HubContext, target: str, tenant: str = "default") -> dict[str, Any]:
    """``custom.airlock`` of an Image target, read back from the hub's repository files."""
    repo = load_image_repo(hub)
    verify_delegations(repo)
    custom: dict[str, Any] = repo.tenants[tenant].signed.targets[target].custom["airlock"]
    return custom


def audit_entries(hub: HubContext) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(action, outcome, object, details) of every entry after `hub.init`."""
    return [
        (e.action, e.outcome, e.object, json.loads(e.details))
        for e in AuditLog(hub.engine, "hub").entries()[1:]
    ]


def test_an_alias_is_resolved_once_to_a_fixed_version(hub: HubContext, registry: Registry) -> None:
    registry.set_alias(IRIS, "moving", "1")
    result = import_model(hub, "models:/iris@moving", tracking_uri=registry.tracking_uri)
    assert result.release.created
    assert (result.release.model.name, result.release.model.version) == ("iris", "1")
    lineage = result.release.model.release.lineage
    assert lineage is not None
    assert (lineage.registered_model, lineage.registered_version, lineage.alias) == (
        "iris",
        "1",
        "moving",
    )
    assert lineage.source == "models:/iris/1"

    registry.set_alias(IRIS, "moving", "2")  # the alias moves on in MLflow …
    [model] = list_models(hub)  # … the hub's release still names the version it resolved to
    assert model.ref == "iris@1" and model.release == result.release.model.release
    signed = signed_custom(hub, "iris/1/model.onnx")["release"]["lineage"]
    assert signed["registered_version"] == "1"
    [(action, outcome, obj, details)] = audit_entries(hub)
    assert (action, outcome, obj) == ("hub.model.import", "success", "iris@1")
    assert details["intake"]["uri"] == "models:/iris@moving"
    assert details["intake"]["alias"] == "moving"
    assert details["intake"]["registered_version"] == "1"

    again = import_model(hub, "models:/iris@moving", tracking_uri=registry.tracking_uri)
    assert again.release.created and again.release.model.ref == "iris@2"
    assert list(hub.home.tmp_dir.iterdir()) == []


def test_version_uri_form(hub: HubContext, registry: Registry) -> None:
    result = import_model(hub, "models:/iris/1", tracking_uri=registry.tracking_uri)
    model = result.release.model
    assert model.ref == "iris@1"
    assert model.release.lineage is not None and model.release.lineage.alias == ""
    assert result.to_dict() == {
        "uri": "models:/iris/1",
        "tracking_uri": registry.tracking_uri,
        "registered_model": "iris",
        "registered_version": "1",
        "alias": None,
    }


def test_lineage_is_signed_in_the_image_target(hub: HubContext, registry: Registry) -> None:
    import_model(hub, f"models:/{IRIS}@{CHAMPION}", tracking_uri=registry.tracking_uri)
    version = registry.client().get_model_version(IRIS, "2")
    logged = registry.versions["iris/2"]

    custom = signed_custom(hub, "iris/2/model.onnx")
    assert (custom["kind"], custom["primary"]) == ("model", True)
    lineage = custom["release"]["lineage"]
    assert lineage["run_id"] == version.run_id
    assert lineage["model_id"].startswith("m-")
    assert version.source == f"models:/{lineage['model_id']}"
    assert lineage["params"] == {"C": "0.05", "max_iter": "1000", "solver": "lbfgs"}
    assert all(isinstance(v, str) for v in lineage["metrics"].values())
    assert Decimal(lineage["metrics"]["accuracy"]) == Decimal(repr(logged["accuracy"]))
    assert Decimal(lineage["metrics"]["train_rows"]) == 120
    assert lineage["tags"]["team"] == "vision"
    assert lineage["training_data_sha256"] == logged["sha256"]
    assert lineage["tags"]["airlock.training_data.digest"] == logged["mlflow_digest"]
    assert lineage["tags"]["airlock.training_data.name"] == "iris-fit"
    signature = lineage["signature"]
    assert signature["from"] == "mlflow"
    assert signature["inputs"] == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}
    ]
    assert signature["outputs"][0]["tensor-spec"]["dtype"] == "int64"
    # no --compat: the graph's default-domain opset is recorded
    assert custom["release"]["compatibility"]["opset"] == 17
    assert custom["release"]["validation"] is None


def test_an_mlflow_digest_that_is_not_sha256_is_kept_under_its_own_name(
    hub: HubContext, registry: Registry
) -> None:
    model = import_model(hub, "models:/iris/1", tracking_uri=registry.tracking_uri).release.model
    lineage = model.release.lineage
    assert lineage is not None
    assert lineage.training_data_sha256 is None
    digest = lineage.tags["airlock.training_data.digest"]
    assert digest == registry.versions["iris/1"]["mlflow_digest"] and len(digest) < 64


def test_external_data_files_are_copied_whole(hub: HubContext, registry: Registry) -> None:
    model = import_model(
        hub, f"models:/{EXTERNAL}/1", tracking_uri=registry.tracking_uri
    ).release.model
    files = {f.filename: f for f in model.files}
    assert len(files) == 2 and files["model.onnx"].primary
    [data] = [f for f in model.files if not f.primary]
    assert data.kind == "model" and data.length == 2048 * 4
    assert "MLmodel" not in files and "conda.yaml" not in files
    for f in model.files:
        assert hub.blobs.path(f.sha256).is_file()
    lineage = model.release.lineage
    assert lineage is not None and lineage.signature is not None
    assert lineage.signature["from"] == "onnx"  # logged without an MLflow signature
    assert lineage.signature["inputs"][0]["tensor-spec"] == {"dtype": "float32", "shape": [1, 2048]}
    assert lineage.params == {"width": "2048"}
    assert signed_custom(hub, f"{EXTERNAL}/1/{data.filename}")["primary"] is False


def test_reimport_through_another_alias_is_unchanged(hub: HubContext, registry: Registry) -> None:
    import_model(hub, f"models:/iris@{CHAMPION}", tracking_uri=registry.tracking_uri)
    before = tree_digest(hub.home.root)
    registry.set_alias(IRIS, "also-two", "2")
    for uri in ("models:/iris/2", "models:/iris@also-two"):
        again = import_model(hub, uri, tracking_uri=registry.tracking_uri)
        assert again.release.created is False
        lineage = again.release.model.release.lineage
        assert lineage is not None and lineage.alias == CHAMPION  # the first import's alias
    assert tree_digest(hub.home.root) == before
    entries = audit_entries(hub)
    assert [(a, o) for a, o, _, _ in entries] == [
        ("hub.model.import", "success"),
        ("hub.model.import", "unchanged"),
        ("hub.model.import", "unchanged"),
    ]
    assert [d["intake"]["alias"] for *_, d in entries] == [CHAMPION, None, "also-two"]


def test_registry_bookkeeping_is_not_lineage(hub: HubContext, registry: Registry) -> None:
    """Registering the same LoggedModel again elsewhere does not make the release differ."""
    first = import_model(hub, f"models:/{EXTERNAL}/1", tracking_uri=registry.tracking_uri)
    lineage = first.release.model.release.lineage
    assert lineage is not None and "mlflow.modelVersions" not in lineage.tags
    with tracking(registry.tracking_uri):  # MLflow resolves models:/m-… sources globally
        registry.client().create_registered_model("adder-copy")
        registry.client().create_model_version(
            "adder-copy", f"models:/{lineage.model_id}", run_id=lineage.run_id
        )
    again = import_model(hub, f"models:/{EXTERNAL}/1", tracking_uri=registry.tracking_uri)
    assert again.release.created is False


def test_other_bytes_or_another_record_under_a_released_version_are_refused(
    hub: HubContext, registry: Registry, tmp_path: Path
) -> None:
    import_model(hub, "models:/iris/1", tracking_uri=registry.tracking_uri, version="7")
    before = tree_digest(hub.home.root)
    with pytest.raises(ConflictError, match="already released with different files"):
        import_model(hub, "models:/iris/2", tracking_uri=registry.tracking_uri, version="7")
    other_record = ReleaseParts(compatibility=Compatibility(opset=17, min_onnxruntime="1.20"))
    with pytest.raises(ConflictError, match="release record"):
        import_model(
            hub,
            "models:/iris/1",
            tracking_uri=registry.tracking_uri,
            version="7",
            parts=other_record,
        )
    assert tree_digest(hub.home.root) == before
    assert [m.ref for m in list_models(hub)] == ["iris@7"]
    assert [(a, o) for a, o, _, _ in audit_entries(hub)] == [
        ("hub.model.import", "success"),
        ("hub.model.import", "refused"),
        ("hub.model.import", "refused"),
    ]
    assert list(hub.home.tmp_dir.iterdir()) == []


def test_validation_set_thresholds_and_compat_are_signed(
    hub: HubContext, registry: Registry, tmp_path: Path
) -> None:
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text('min_accuracy = "0.9"\nmax_p95_latency_ms = 25\n')
    compat = tmp_path / "compat.json"
    compat.write_text(json.dumps({"min_onnxruntime": "1.17", "depends": ["perception>=1.5"]}))
    parts = release_parts(registry.validation_set, thresholds, compat)
    model = import_model(
        hub, "models:/iris@champion", tracking_uri=registry.tracking_uri, parts=parts
    ).release.model

    release = signed_custom(hub, "iris/2/model.onnx")["release"]
    assert ValidationSpec.from_dict(release["validation"]) == ValidationSpec(
        file="validation.npz", min_accuracy="0.9", max_p95_latency_ms="25"
    )
    assert release["compatibility"] == {
        "opset": 17,  # not in the file: taken from the graph
        "min_onnxruntime": "1.17",
        "providers": ["CPUExecutionProvider"],
        "architectures": [],
        "min_memory_mb": None,
        "depends": [{"model": "perception", "min_version": "1.5"}],
    }
    validation = signed_custom(hub, "iris/2/validation.npz")
    assert (validation["kind"], validation["primary"]) == ("validation", False)
    [file] = model.files_of_kind("validation")
    assert hub.blobs.path(file.sha256).read_bytes() == registry.validation_set.read_bytes()


def test_an_explicit_compat_opset_wins(hub: HubContext, registry: Registry) -> None:
    parts = ReleaseParts(compatibility=Compatibility(opset=15))
    model = import_model(
        hub, "models:/iris/1", tracking_uri=registry.tracking_uri, parts=parts
    ).release.model
    assert model.release.compatibility is not None and model.release.compatibility.opset == 15


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/no-such-model@champion", "no-such-model"),
        ("models:/iris@no-such-alias", "has no alias 'no-such-alias'"),
        ("models:/iris/99", "not found"),
    ],
)
def test_unknown_model_alias_or_version(
    hub: HubContext, registry: Registry, uri: str, message: str
) -> None:
    before = tree_digest(hub.home.root)
    with pytest.raises(NotFoundError, match=message) as raised:
        import_model(hub, uri, tracking_uri=registry.tracking_uri)
    assert raised.value.hint
    assert tree_digest(hub.home.root) == before
    assert list_models(hub) == []
    assert list(hub.home.tmp_dir.iterdir()) == []
    [(action, outcome, obj, details)] = audit_entries(hub)
    assert (action, outcome, obj) == ("hub.model.import", "refused", uri)
    assert details["error"] == "NotFoundError"


def test_alias_not_found_hint_lists_the_aliases(hub: HubContext, registry: Registry) -> None:
    with pytest.raises(NotFoundError) as raised:
        import_model(hub, "models:/iris@nope", tracking_uri=registry.tracking_uri)
    assert "@champion" in raised.value.hint and "@challenger" in raised.value.hint


@pytest.mark.parametrize(
    "uri", ["models:/iris", "runs:/abc/model", "models:/m-0123abc", "models:/iris/latest", "iris"]
)
def test_uris_that_do_not_name_a_registered_version_are_refused(uri: str) -> None:
    with pytest.raises(UsageError, match="not a registered model version URI"):
        parse_model_uri(uri)


def test_uri_forms() -> None:
    assert str(parse_model_uri("models:/iris@champion")) == "models:/iris@champion"
    assert parse_model_uri("models:/team/iris/3").name == "team/iris"
    assert parse_model_uri("models:/iris/03").version == "3"


def test_a_registered_name_airlock_cannot_use_needs_name(
    hub: HubContext, registry: Registry
) -> None:
    client = registry.client()
    run_id = client.get_model_version(IRIS, "1").run_id
    # registered from the artifacts' location (the MLflow 2 way), not from a LoggedModel
    location = client.get_model_version_download_uri(IRIS, "1")
    client.create_registered_model("iris model")
    client.create_model_version("iris model", location, run_id=run_id)
    with pytest.raises(UsageError, match="not a valid Airlock model name") as raised:
        import_model(hub, "models:/iris model/1", tracking_uri=registry.tracking_uri)
    assert "--name" in raised.value.hint
    model = import_model(
        hub, "models:/iris model/1", tracking_uri=registry.tracking_uri, name="iris-model"
    ).release.model
    assert model.ref == "iris-model@1"
    lineage = model.release.lineage
    assert lineage is not None and lineage.registered_model == "iris model"
    assert (lineage.run_id, lineage.model_id) == (run_id, "")
    assert lineage.params["C"] == "1.0"


def test_tracking_uri_order(hub: HubContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AIRLOCK_MLFLOW_TRACKING_URI", raising=False)
    default = mlflow_intake.tracking_uri_for(hub)
    assert default == f"sqlite:///{hub.home.root.absolute()}/mlflow/mlflow.db"
    monkeypatch.setenv("AIRLOCK_MLFLOW_TRACKING_URI", "sqlite:///registry/mlflow.db")
    relative_to_home = f"sqlite:///{hub.home.root.absolute()}/registry/mlflow.db"
    assert mlflow_intake.tracking_uri_for(hub) == relative_to_home
    monkeypatch.setenv("AIRLOCK_MLFLOW_TRACKING_URI", "http://configured:5000")
    assert mlflow_intake.tracking_uri_for(hub) == "http://configured:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert mlflow_intake.tracking_uri_for(hub) == "http://env:5000"
    assert mlflow_intake.tracking_uri_for(hub, "http://explicit:5000") == "http://explicit:5000"


def test_a_missing_default_store_is_not_created(
    hub: HubContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AIRLOCK_MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(NotFoundError, match="no MLflow database") as raised:
        import_model(hub, "models:/iris@champion")
    assert "--tracking-uri" in raised.value.hint
    assert not (hub.home.root / "mlflow").exists()


def test_an_unreachable_server_is_reported_quickly(hub: HubContext) -> None:
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"MLflow at http://127\.0\.0\.1:9 failed") as raised:
        import_model(hub, "models:/iris@champion", tracking_uri="http://127.0.0.1:9")
    assert time.monotonic() - started < 60  # MLflow's own default retries take minutes
    assert raised.value.exit_code == 5 and "reachable" in raised.value.hint
    [(action, outcome, obj, _)] = audit_entries(hub)
    assert (action, outcome, obj) == ("hub.model.import", "failure", "models:/iris@champion")


def test_credentials_never_reach_audit_entries_or_messages() -> None:
    assert redact_uri("https://user:s3cret@mlflow.example:5000/api?token=t") == (
        "https://mlflow.example:5000/api"
    )
    assert redact_uri("postgresql://airlock:pw@db/mlflow") == "postgresql://db/mlflow"
    assert (
        redact_uri("sqlite:////srv/hub/mlflow/mlflow.db") == "sqlite:////srv/hub/mlflow/mlflow.db"
    )


@pytest.fixture(autouse=True)
def no_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every test runs in its own directory, where MLflow's default store must not appear."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield
    assert list(cwd.iterdir()) == [], "something used MLflow's process-wide default store"


# -- the command line ---------------------------------------------------------------------


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ceremony: CeremonyResult
) -> Callable[..., Result]:
    """Runs `airlock hub ARGS…` against an initialised hub home (passphrase and home in env)."""
    monkeypatch.setenv("AIRLOCK_HUB_PASSPHRASE", HUB_PASSPHRASE)
    monkeypatch.setenv("COLUMNS", "250")  # rich tables: one line per row
    monkeypatch.setenv("AIRLOCK_HUB_HOME", str(tmp_path / "hub-home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> Result:
        result = runner.invoke(main, ["hub", *args], catch_exceptions=False)
        assert result.exit_code == expect, result.output + result.stderr
        return result

    run("init", "--from", str(ceremony.out_dir))
    return run


def test_cli_import_with_validation_thresholds_and_compat(
    cli: Callable[..., Result],
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"min_accuracy": 0.9, "latency_runs": 20}))
    compat = tmp_path / "compat.toml"
    compat.write_text('opset = 17\nmin_memory_mb = 256\ndepends = ["perception>=1.5"]\n')
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)  # honoured
    out = json.loads(
        cli(
            "model", "import", "models:/iris@champion",
            "--name", "flowers", "--version", "2.0.0",
            "--validation-set", str(registry.validation_set),
            "--thresholds", str(thresholds),
            "--compat", str(compat),
            "--json",
        ).stdout
    )  # fmt: skip
    assert out["created"] is True and (out["name"], out["version"]) == ("flowers", "2.0.0")
    assert out["mlflow"]["registered_version"] == "2" and out["mlflow"]["alias"] == "champion"
    assert out["release"]["lineage"]["registered_model"] == "iris"
    assert out["release"]["validation"]["min_accuracy"] == "0.9"
    assert out["release"]["validation"]["latency_runs"] == 20
    assert out["release"]["compatibility"]["min_memory_mb"] == 256
    assert {f["filename"]: f["kind"] for f in out["files"]} == {
        "model.onnx": "model",
        "validation.npz": "validation",
    }

    listed = json.loads(cli("model", "list", "--json").stdout)
    assert listed[0]["release"] == out["release"]
    assert "mlflow iris/2 @champion" in cli("model", "list").stdout
    shown = cli("model", "show", "flowers", "2.0.0").stdout
    assert "lineage.run_id" in shown and "validation.min_accuracy" in shown
    assert "perception" in shown
    assert json.loads(cli("model", "show", "flowers", "2.0.0", "--json").stdout) == listed[0]

    same = (
        "model", "import", "models:/iris/2", "--name", "flowers", "--version", "2.0.0",
        "--validation-set", str(registry.validation_set),
        "--thresholds", str(thresholds),
        "--compat", str(compat),
    )  # fmt: skip
    assert "nothing changed" in cli(*same).stdout  # same version, no alias this time
    other = cli(*same[:7], expect=3)  # without the validation set: another release record
    assert "already released with different files or release record" in other.stderr


def test_cli_errors_name_the_problem_and_exit_3(
    cli: Callable[..., Result], registry: Registry, tmp_path: Path
) -> None:
    uri = ("--tracking-uri", registry.tracking_uri)
    alias = cli("model", "import", "models:/iris@nope", *uri, expect=3)
    assert "has no alias 'nope'" in alias.stderr and "what to do:" in alias.stderr
    missing = cli("model", "import", "models:/nothing/1", *uri, expect=3)
    assert "nothing" in missing.stderr
    bad = tmp_path / "thresholds.toml"
    bad.write_text("min_acuracy = 0.9\n")
    refused = cli(
        "model", "import", "models:/iris/1", *uri,
        "--validation-set", str(registry.validation_set), "--thresholds", str(bad),
        expect=3,
    )  # fmt: skip
    assert str(bad) in refused.stderr and "min_acuracy" in refused.stderr
    assert cli("model", "show", "iris", "1", expect=3).stderr.count("not released") == 1
    assert json.loads(cli("model", "list", "--json").stdout) == []


def _python(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    "args", [["--help"], ["hub", "--help"], ["hub", "model", "import", "--help"]]
)
def test_the_cli_starts_without_importing_mlflow(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from airlock.bundles.cli._main import main\n"
        f"try: main({args!r})\n"
        "except SystemExit: pass\n"
        "heavy = sorted(m for m in ('mlflow', 'sklearn', 'pandas') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = _python(code)
    assert "Usage:" in out and "HEAVY []" in out


def test_mlflow_is_imported_with_telemetry_disabled() -> None:
    """In a clean environment (no CI markers, no opt-out), the intake path turns telemetry off."""
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_OPT_OUTS}
    code = (
        "import os, sys\n"
        "from airlock.hub.intake._mlflow import load_mlflow\n"
        "assert 'mlflow' not in sys.modules\n"
        "load_mlflow()\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "from mlflow.telemetry.utils import is_telemetry_disabled\n"
        "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], is_telemetry_disabled(),"
        " get_telemetry_client())\n"
    )
    assert _python(code, env).split() == ["true", "True", "None"]
