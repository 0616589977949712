"""deploy/k8s/: rendered, validated against the Kubernetes schemas, and true to the capacity model.

Rendering: deploy/k8s/render.py (Python, always) and, where kubectl is installed, ``kubectl
kustomize`` too; both must give the same resources. Validation: kubernetes-validate's strict
schemas (unknown fields fail) for every Kubernetes kind; KEDA's ScaledObject, whose CRD is not in
those schemas, against deploy/k8s/schemas/keda-scaledobject-v1alpha1.json, written from KEDA's
documented fields.
"""

import copy
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from eventpulse.config.broker import BrokerSettings
from gateway.routes import table as route_table

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = [K8S / "base", K8S / "overlays" / "production"]
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # oldest and newest minor that is still commonly run / shipped
KEDA_SCHEMA = json.loads((K8S / "schemas" / "keda-scaledobject-v1alpha1.json").read_text())


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


render = load("eventpulse_k8s_render", K8S / "render.py")
capacity = load("eventpulse_capacity", ROOT / "deploy" / "capacity.py")
flow_cluster = load("eventpulse_flow_cluster", K8S / "base" / "flow-cluster.py")


def rendered(folder: Path = KUSTOMIZATIONS[1]) -> list[dict[str, Any]]:
    return render.render(folder)


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def one(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return by_kind(resources, kind)[name]


def key(resource: dict[str, Any]) -> tuple[str, str, str | None, str]:
    meta = resource["metadata"]
    return resource["apiVersion"], resource["kind"], meta.get("namespace"), meta["name"]


def workloads(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] in {"Deployment", "StatefulSet"}]


def validate(resource: dict[str, Any], version: str) -> None:
    if resource["kind"] == "ScaledObject":
        jsonschema.validate(resource, KEDA_SCHEMA)
    else:
        kubernetes_validate.validate(resource, version, strict=True)


# --- rendering and schemas ----------------------------------------------------------------------


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_validates_against_the_schemas(folder: Path, version: str) -> None:
    resources = rendered(folder)
    assert len(resources) >= 20
    for resource in resources:
        validate(resource, version)


def test_schema_validation_catches_mistakes() -> None:
    """Negative controls: a misspelt field, a wrong type and a bad KEDA trigger are all refused."""
    resources = rendered()
    gateway = copy.deepcopy(one(resources, "Deployment", "eventpulse-gateway"))
    gateway["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(gateway, KUBERNETES_VERSIONS[-1])
    hpa = copy.deepcopy(one(resources, "HorizontalPodAutoscaler", "eventpulse-gateway"))
    hpa["spec"]["minReplicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(hpa, KUBERNETES_VERSIONS[-1])
    scaled = one(resources, "ScaledObject", "eventpulse-flow")
    for mutate in (
        lambda s: s["spec"]["triggers"][0]["metadata"].update(lagThreshold=333000),  # not a string
        lambda s: s["spec"]["triggers"][0]["metadata"].pop("consumerGroup"),
        lambda s: s["spec"].update(maxReplicas=3),  # HPA's name, not KEDA's
    ):
        broken = copy.deepcopy(scaled)
        mutate(broken)
        with pytest.raises(jsonschema.ValidationError):
            validate(broken, KUBERNETES_VERSIONS[-1])


@pytest.mark.integration  # runs kubectl in a subprocess
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed: render.py alone renders")
@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_render_matches_kubectl_kustomize(folder: Path) -> None:
    result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    reference = {key(r): r for r in yaml.safe_load_all(result.stdout) if r}
    ours = {key(r): r for r in rendered(folder)}
    assert ours == reference


def test_the_renderer_refuses_what_it_does_not_do(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nhelmCharts: []\n")
    with pytest.raises(render.RenderError, match="helmCharts"):
        render.render(tmp_path)


# --- what the manifests must say -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["eventpulse-gateway", "eventpulse-flow", "eventpulse-dagster", "eventpulse-dashboard"]
)
def test_every_workload_has_a_matching_disruption_budget(name: str) -> None:
    resources = rendered()
    workload = next(r for r in workloads(resources) if r["metadata"]["name"] == name)
    pdb = one(resources, "PodDisruptionBudget", name)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert workload["spec"]["selector"]["matchLabels"] == pdb["spec"]["selector"]["matchLabels"]


def test_every_container_has_probes_and_resources() -> None:
    for workload in workloads(rendered()):
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert "livenessProbe" in container, where
            if container["name"] != "daemon":  # takes no traffic: liveness (its heartbeats) only
                assert "readinessProbe" in container, where
            requests = container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests), where
            assert "memory" in container["resources"]["limits"], where


def test_probes_hit_the_health_routes_of_each_service() -> None:
    resources = rendered()
    gateway = one(resources, "Deployment", "eventpulse-gateway")["spec"]["template"]["spec"]["containers"][0]
    # the gateway mounts exactly its route table (tests/gateway/test_route_table.py)
    assert gateway["readinessProbe"]["httpGet"]["path"] == route_table.READY.path == "/api/health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == route_table.HEALTH.path == "/api/health"
    dashboard = one(resources, "Deployment", "eventpulse-dashboard")["spec"]["template"]["spec"]["containers"][0]
    assert dashboard["readinessProbe"]["httpGet"]["path"] == "/_stcore/health"
    dagster = one(resources, "Deployment", "eventpulse-dagster")["spec"]["template"]["spec"]["containers"]
    assert dagster[0]["readinessProbe"]["httpGet"]["path"] == "/server_info"
    assert dagster[1]["livenessProbe"]["exec"]["command"] == ["dagster-daemon", "liveness-check"]
    flow = one(resources, "StatefulSet", "eventpulse-flow")["spec"]["template"]["spec"]["containers"][0]
    assert flow["readinessProbe"]["httpGet"] == {"path": "/metrics", "port": "api"}
    assert flow["livenessProbe"]["exec"]["command"][-1] == "check"


def test_requests_and_autoscaling_follow_the_capacity_model() -> None:
    resources = rendered()
    plan = capacity.Plan(1_000_000)
    gateway = one(resources, "Deployment", "eventpulse-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert gateway["resources"]["requests"]["cpu"] == capacity.cpu_request(capacity.CORES_PER_GATEWAY)
    hpa = one(resources, "HorizontalPodAutoscaler", "eventpulse-gateway")["spec"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == round(capacity.TARGET_UTILIZATION * 100)
    assert hpa["maxReplicas"] == plan.gateway_replicas
    flow = one(resources, "StatefulSet", "eventpulse-flow")["spec"]["template"]["spec"]
    assert flow["containers"][0]["resources"]["requests"]["cpu"] == capacity.cpu_request(
        capacity.CORES_PER_FLOW_PROCESS
    )
    env = {e["name"]: e.get("value") for e in flow["containers"][0]["env"]}
    assert env["FLOW_WORKERS"] == "1"  # one core per process: the model's unit
    scaled = one(resources, "ScaledObject", "eventpulse-flow")["spec"]
    assert scaled["triggers"][0]["metadata"]["lagThreshold"] == str(capacity.lag_threshold())
    assert scaled["maxReplicaCount"] == plan.partitions
    config = one(resources, "ConfigMap", "eventpulse-env")["data"]
    assert int(config["EVENTPULSE_BROKER_PARTITIONS"]) == plan.partitions
    assert int(env["EVENTPULSE_STREAM_KEY_BUCKETS"]) == plan.partitions
    recovery_parts = int(flow["initContainers"][0]["command"][-1].rsplit(" ", 1)[1].rstrip("'"))
    assert recovery_parts >= scaled["maxReplicaCount"]


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_keda_watches_the_topic_and_group_the_flow_reads(folder: Path) -> None:
    resources = rendered(folder)
    scaled = one(resources, "ScaledObject", "eventpulse-flow")["spec"]
    config = one(resources, "ConfigMap", "eventpulse-env")["data"]
    trigger = scaled["triggers"][0]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["bootstrapServers"] == config["EVENTPULSE_BROKER_BOOTSTRAP"]
    topic = BrokerSettings().events_topic
    assert trigger["metadata"]["topic"] == topic
    # The group id the flow's source consumers carry (flows/source.py).
    assert trigger["metadata"]["consumerGroup"] == f"eventpulse-flow-{topic}"
    assert 'group_id=f"eventpulse-flow-{topic}"' in (ROOT / "flows" / "source.py").read_text()
    target = scaled["scaleTargetRef"]
    assert one(resources, target["kind"], target["name"])["apiVersion"] == target["apiVersion"]
    assert "replicas" not in scaled  # KEDA owns the count, within min/max


def test_the_production_overlay_sets_namespace_and_image() -> None:
    for resource in rendered():
        assert resource["metadata"]["namespace"] == "eventpulse"
        for container in render._containers(resource):
            assert container["image"] == "registry.example.com/eventpulse/app:0.1.0"
    binding = one(rendered(), "RoleBinding", "eventpulse-flow")
    assert binding["subjects"][0]["namespace"] == "eventpulse"


# --- the flow's cluster entrypoint ---------------------------------------------------------------


def test_flow_processes_get_their_index_and_every_peer() -> None:
    env = {"FLOW_SERVICE": "eventpulse-flow", "POD_NAMESPACE": "ep", "FLOW_PORT": "2101", "FLOW_WORKERS": "1"}
    argv = flow_cluster.bytewax_argv("eventpulse-flow-2", 3, env)
    assert argv[argv.index("-i") + 1] == "2"
    peers = argv[argv.index("-a") + 1].split(";")
    assert peers == [f"eventpulse-flow-{i}.eventpulse-flow.ep.svc.cluster.local:2101" for i in range(3)]
    assert argv[argv.index("-w") + 1] == "1" and argv[argv.index("-r") + 1] == "/recovery"
    with pytest.raises(SystemExit, match="outside"):
        flow_cluster.bytewax_argv("eventpulse-flow-3", 3, env)


def test_the_flow_pods_mount_the_entrypoint_they_run() -> None:
    resources = rendered()
    flow = one(resources, "StatefulSet", "eventpulse-flow")
    pod = flow["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"][:2] == ["python", "/opt/eventpulse/flow-cluster.py"]
    scripts = next(v for v in pod["volumes"] if v["name"] == "scripts")["configMap"]["name"]
    assert "flow-cluster.py" in one(resources, "ConfigMap", scripts)["data"]
    assert flow["spec"]["podManagementPolicy"] == "Parallel"
    role = one(resources, "Role", "eventpulse-flow")["rules"][0]
    assert role["resources"] == ["statefulsets/scale"] and role["verbs"] == ["get"]
    assert role["resourceNames"] == [flow["metadata"]["name"]]
