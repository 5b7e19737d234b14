"""The Kubernetes manifests (deploy/kubernetes/) checked against the code: every
environment variable they name is a setting of ``flowwire serve --help``, the probe and
scrape paths answer on a real gateway started with the ConfigMap's settings, the ports
agree (container, probes, Service, Dockerfile), the grace period exceeds
``DRAIN_WINDOW`` plus ``SERVER_WRITE_TIMEOUT`` as the code parses them, and the
selectors select the Deployment's pods."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from gateway.config import Config
from tests.support.gateway import SECRET, GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def kind(name: str, wanted: str) -> dict[str, Any]:
    (doc,) = [d for d in documents(name) if d["kind"] == wanted]
    return doc


@pytest.fixture(scope="module")
def settings() -> set[str]:
    """The setting names `flowwire serve --help` lists."""
    text = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    section = text.split("settings (environment variables):", 1)[1]
    names = set(re.findall(r"^  ([A-Z][A-Z0-9_]+)  ", section, re.MULTILINE))
    assert len(names) > 20, text
    return names


def deployment() -> dict[str, Any]:
    return kind("deployment.yaml", "Deployment")


def container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment()["spec"]["template"]["spec"]["containers"]
    (c,) = containers
    return c


def config_data() -> dict[str, str]:
    data: dict[str, str] = kind("configmap.yaml", "ConfigMap")["data"]
    return data


def secrets() -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d["stringData"] for d in documents("secrets.example.yaml")}


def test_kustomization_lists_every_manifest_but_the_secret_examples() -> None:
    resources = kind("kustomization.yaml", "Kustomization")["resources"]
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert sorted(resources) == sorted(on_disk)


def test_every_environment_variable_named_is_a_setting(settings: set[str]) -> None:
    named = set(config_data())
    for ref in container()["envFrom"]:
        if "configMapRef" in ref:
            assert ref["configMapRef"]["name"] == kind("configmap.yaml", "ConfigMap")["metadata"]["name"]
        else:
            name = ref["secretRef"]["name"]
            assert name in secrets(), f"no example of Secret {name}"
            named |= set(secrets()[name])
    for var in container()["env"]:
        named.add(var["name"])
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets()[ref["name"]]
    for example in secrets().values():
        named |= set(example)
    unknown = named - settings
    assert not unknown, f"not settings of flowwire serve: {sorted(unknown)}"
    assert {"REDIS_URL", "JWT_SECRET", "DRAIN_WINDOW"} <= named


def test_redis_settings_are_an_optional_secret() -> None:
    refs = [r["secretRef"] for r in container()["envFrom"] if "secretRef" in r]
    assert [r["optional"] for r in refs if "REDIS_URL" in secrets()[r["name"]]] == [True]


def test_ports_agree() -> None:
    c = container()
    (port,) = c["ports"]
    args = c["args"]
    assert args[:2] == ["flowwire", "serve"] and int(args[args.index("--port") + 1]) == port["containerPort"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] in (port["name"], port["containerPort"])
    (service_port,) = kind("service.yaml", "Service")["spec"]["ports"]
    assert service_port["targetPort"] in (port["name"], port["containerPort"])
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port["containerPort"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^EXPOSE {port['containerPort']}$", dockerfile, re.MULTILINE)
    uid = deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert re.search(rf"^USER {uid}(:|$)", dockerfile, re.MULTILINE)  # the image's non-root user


def test_grace_period_exceeds_the_drain() -> None:
    config = Config.from_env({**config_data(), "JWT_SECRET": SECRET})  # the code parses the ConfigMap
    grace = deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > config.drain_window + config.write_timeout, (
        grace,
        config.drain_window,
        config.write_timeout,
    )


def test_selectors_select_the_pods() -> None:
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment()["spec"]["selector"]["matchLabels"],
        kind("poddisruptionbudget.yaml", "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        kind("service.yaml", "Service")["spec"]["selector"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()
    pdb = kind("poddisruptionbudget.yaml", "PodDisruptionBudget")["spec"]
    assert pdb.get("maxUnavailable", 0) >= 1 or pdb.get("minAvailable", 0) < deployment()["spec"]["replicas"]
    assert deployment()["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.fixture(scope="module")
def configured_gateway() -> Iterator[GatewayProcess]:
    """A gateway with the ConfigMap's settings and a Redis from the optional Secret."""
    from tests.support.redis_server import RedisServer

    redis = RedisServer()
    redis.start()
    gw = GatewayProcess({**config_data(), "REDIS_URL": redis.url})
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()
        redis.close()


def test_probe_and_scrape_paths_answer(configured_gateway: GatewayProcess) -> None:
    c = container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        status, body = configured_gateway.get(c[probe]["httpGet"]["path"])
        assert status == 200, (probe, body)
    path = deployment()["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
    status, body = configured_gateway.get(path)
    assert status == 200 and b"flowwire_connections " in body
