"""The deployment files: Kubernetes manifests valid against the API's schemas, and every
setting, command and probe path they name real (no cluster runs here; the image and the
processes are run for real in test_image.py and test_rolling_restart.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from server.app import create_app
from server.cli import main
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES = "1.31.0"
SETTINGS = {name.upper() for name in Settings.model_fields}


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, document)
        for path in MANIFESTS
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


@pytest.mark.parametrize(("name", "document"), documents(), ids=lambda v: str(v)[:40])
def test_each_manifest_is_valid_for_kubernetes(name: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES, strict=True)


def _containers() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, document in documents():
        spec = document.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        found += [(f"{name}:{c['name']}", c) for c in pod.get("containers", [])]
    return found


def test_the_manifests_hold_what_a_deployment_needs() -> None:
    kinds = {document["kind"] for _, document in documents()}
    assert kinds >= {
        "Deployment",
        "Job",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
    }
    for name, document in documents():
        pod = document.get("spec", {}).get("template", {}).get("spec")
        if pod is not None:
            assert pod["securityContext"]["runAsNonRoot"] is True, name
    for name, container in _containers():
        assert container["resources"]["requests"], name
        refs = {next(iter(ref)) for ref in container["envFrom"]}
        assert refs == {"configMapRef", "secretRef"}, name


def test_every_variable_they_set_is_a_real_setting() -> None:
    named: set[str] = set()
    for _, document in documents():
        if document["kind"] in ("ConfigMap", "Secret"):
            named |= set(document.get("data", {})) | set(document.get("stringData", {}))
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    named |= set(compose["x-settings"])
    assert named and named <= SETTINGS, named - SETTINGS


async def test_every_command_parses_and_every_probe_path_is_a_route(tmp_path: Path) -> None:
    app = create_app(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    probed = {"/healthz", "/readyz", "/metrics"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        for path in probed:
            assert (await client.get(path)).status_code != 404, path
    paths = probed
    worker_paths = {"/healthz", "/metrics"}  # `todo-chat worker --port`
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    commands = [c["command"] for _, c in _containers()]
    commands += [s["command"] for s in compose["services"].values() if "command" in s]
    for command in commands:
        if command[0] != "todo-chat":
            continue
        with pytest.raises(SystemExit) as parsed:
            main([*command[1:], "--help"])
        assert parsed.value.code == 0, command
    for name, container in _containers():
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe in container:
                path = container[probe]["httpGet"]["path"]
                expected = worker_paths if "worker" in name else paths
                assert path in expected, (name, probe, path)
    for service in compose["services"].values():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        for path in re.findall(r"127\.0\.0\.1:\d+(/\w+)", test):
            assert path in paths | worker_paths, path
