"""The Kubernetes manifests in deploy/ (issue 18, item 5), checked offline: built-in kinds against
Kubernetes' own schemas (`kubernetes-validate`, strict), the Temporal Worker Controller's and
KEDA's kinds against JSON Schemas derived from their public CRDs (deploy/schemas/), and the
invariants that tie the manifests to the code: the grace period covers the worker's drain, the
probes ask what the processes answer, the flags exist. And the readiness file, with a real
worker."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from durable_agent._drain import POLL_DRAIN
from durable_agent.serve.auth import PUBLIC_PATHS
from durable_agent.worker import DEFAULT_GRACEFUL_TIMEOUT, DEFAULT_TASK_QUEUE, READY_FILE_VARIABLE
from faults.cluster import polls

from .processes import BIN, ROOT, eventually, start_worker, stop
from .test_e2e import address_of

DEPLOY = ROOT / "deploy"
SCHEMAS = DEPLOY / "schemas"
KUBERNETES = ("1.31.0", "1.37.0")
"""The oldest Kubernetes release still patched upstream when this was written, and the newest
kubernetes-validate knows."""
CUSTOM = {"keda.sh", "temporal.io"}
CONTROLLER_ENV = {"TEMPORAL_DEPLOYMENT_NAME", "TEMPORAL_WORKER_BUILD_ID"}
"""What the Temporal Worker Controller sets in every worker container
(internal/k8s/deployments.go, ApplyControllerPodSpecModifications)."""
KEDA_TEMPORAL_METADATA = {
    "endpoint",
    "namespace",
    "taskQueue",
    "queueTypes",
    "targetQueueSize",
    "activationTargetQueueSize",
    "workerDeploymentName",
    "workerDeploymentBuildId",
    "enableTLS",
    "unsafeSsl",
    "tlsServerName",
    "minConnectTimeout",
}
"""The `temporal` scaler's trigger metadata (KEDA pkg/scalers/temporal_scaler.go): a misspelt
key would be ignored, not refused."""


def manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted([*DEPLOY.glob("k8s/*.yaml"), *DEPLOY.glob("controller/*.yaml")]):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield f"{path.relative_to(DEPLOY)}:{doc['kind']}/{doc['metadata']['name']}", doc


ALL = dict(manifests())


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {name: doc for name, doc in ALL.items() if doc["kind"] == kind}


def one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(kind).values() if d["metadata"]["name"] == name]
    return doc


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", ()), *spec["containers"]]


CONFIG = one("ConfigMap", "durable-agent")["data"]
WORKER_PODS = [one("Deployment", "durable-agent-worker"), one("WorkerDeployment", "durable-agent")]


def is_custom(doc: dict[str, Any]) -> bool:
    return doc["apiVersion"].split("/")[0] in CUSTOM


@pytest.mark.parametrize("name", [n for n, d in ALL.items() if not is_custom(d)])
@pytest.mark.parametrize("version", KUBERNETES)
def test_built_in_kinds_match_kubernetes_schemas(name: str, version: str) -> None:
    kubernetes_validate.validate(ALL[name], version, strict=True)


def schema_for(doc: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{doc['kind'].lower()}.json").read_text())
    return schema


@pytest.mark.parametrize("name", [n for n, d in ALL.items() if is_custom(d)])
def test_custom_kinds_match_the_schemas_derived_from_their_crds(name: str) -> None:
    doc = ALL[name]
    schema = schema_for(doc)
    assert schema["properties"]["apiVersion"]["const"] == doc["apiVersion"]
    jsonschema.validate(doc, schema)


def test_a_derived_schema_refuses_a_misspelt_field() -> None:
    doc = json.loads(json.dumps(one("WorkerDeployment", "durable-agent")))
    doc["spec"]["rollout"]["steps"][0]["rampPercent"] = 5
    with pytest.raises(jsonschema.ValidationError, match="rampPercent"):
        jsonschema.validate(doc, schema_for(doc))


def test_every_derived_schema_names_its_source() -> None:
    for path in SCHEMAS.glob("*.json"):
        assert re.search(
            r"from github\.com/\S+@[0-9a-f]{40} \S+\.yaml", json.loads(path.read_text())["$comment"]
        )


def test_rollout_steps_keep_the_controllers_own_rules() -> None:
    """The CRD's CEL rules, which a JSON Schema cannot say: a Progressive rollout has steps,
    each pausing at least 30 s; ramps grow."""
    rollout = one("WorkerDeployment", "durable-agent")["spec"]["rollout"]
    assert rollout["strategy"] == "Progressive" and rollout["steps"]
    units = {"s": 1, "m": 60, "h": 3600}
    pauses = [
        int(s["pauseDuration"][:-1]) * units[s["pauseDuration"][-1]] for s in rollout["steps"]
    ]
    assert min(pauses) >= 30
    ramps = [s["rampPercentage"] for s in rollout["steps"]]
    assert ramps == sorted(set(ramps))


@pytest.mark.parametrize("name", list(of_kind("WorkerResourceTemplate")))
def test_a_per_build_template_is_a_valid_resource_once_the_controller_fills_it_in(
    name: str,
) -> None:
    spec = ALL[name]["spec"]
    assert ("workerDeploymentRef" in spec) != ("temporalWorkerDeploymentRef" in spec)
    assert (
        spec["workerDeploymentRef"]["name"]
        == one("WorkerDeployment", "durable-agent")["metadata"]["name"]
    )
    rendered = json.loads(json.dumps(spec["template"]))
    rendered["metadata"] = {"name": "durable-agent-build-1"}
    inner = rendered["spec"]
    if inner.get("scaleTargetRef") == {}:
        inner["scaleTargetRef"] = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}
    if inner.get("selector", {}).get("matchLabels") == {}:
        inner["selector"]["matchLabels"] = {"temporal.io/build-id": "1"}
    for version in KUBERNETES:
        kubernetes_validate.validate(rendered, version, strict=True)


def test_the_grace_period_covers_the_drain_and_the_graceful_timeout() -> None:
    graceful = float(CONFIG["DURABLE_AGENT_GRACEFUL_TIMEOUT"])
    assert graceful == DEFAULT_GRACEFUL_TIMEOUT.total_seconds()
    drain = 2 * POLL_DRAIN.total_seconds()  # the task queue's polls, then the sticky ones
    for doc in WORKER_PODS:
        grace = doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= graceful + drain + 5, doc["metadata"]["name"]


def test_a_worker_is_ready_while_it_polls_and_its_metrics_port_is_named() -> None:
    ready_file = CONFIG[READY_FILE_VARIABLE]
    for doc in WORKER_PODS:
        (worker,) = containers(doc)
        assert worker["readinessProbe"]["exec"]["command"] == ["test", "-f", ready_file]
        assert Path(ready_file).parent.as_posix() in {
            m["mountPath"] for m in worker["volumeMounts"]
        }
        assert {
            "name": "metrics",
            "containerPort": int(CONFIG["DURABLE_AGENT_METRICS_PORT"]),
        } in worker["ports"]
    service = one("Service", "durable-agent-worker-metrics")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    rolling = one("Deployment", "durable-agent-worker")["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0  # a new worker polls before an old one stops


def test_a_versioned_worker_takes_its_version_from_the_controller() -> None:
    (worker,) = containers(one("WorkerDeployment", "durable-agent"))
    args = worker["args"]
    named = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}
    assert {named["--deployment-name"], named["--build-id"]} == {f"$({v})" for v in CONTROLLER_ENV}


def test_serve_is_probed_on_its_public_health_route() -> None:
    (serve,) = containers(one("Deployment", "durable-agent-serve"))
    for probe in ("readinessProbe", "livenessProbe"):
        assert serve[probe]["httpGet"]["path"] in PUBLIC_PATHS
    service = one("Service", "durable-agent-serve")
    assert service["spec"]["ports"][0]["targetPort"] == serve["ports"][0]["name"]


def test_every_container_has_resources_and_runs_unprivileged() -> None:
    for name, doc in ALL.items():
        if doc["kind"] not in {"Deployment", "WorkerDeployment"}:
            continue
        assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], name
        for container in containers(doc):
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_backlog_autoscaling_watches_our_task_queue_and_never_scales_to_zero() -> None:
    scaled = one("ScaledObject", "durable-agent-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "durable-agent-worker"
    assert scaled["spec"]["minReplicaCount"] >= 1
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "temporal"
    assert set(trigger["metadata"]) <= KEDA_TEMPORAL_METADATA
    assert trigger["metadata"]["taskQueue"] == DEFAULT_TASK_QUEUE
    hpa = one("WorkerResourceTemplate", "durable-agent-hpa")["spec"]["template"]["spec"]
    assert hpa["minReplicas"] >= 1
    (metric,) = hpa["metrics"]
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {
        "temporal_task_queue": DEFAULT_TASK_QUEUE
    }


def test_the_flags_in_the_manifests_are_the_clis() -> None:
    """Every --flag a manifest passes is one `durable-agent <verb> --help` lists."""
    by_verb: dict[str, set[str]] = {}
    for doc in ALL.values():
        if doc["kind"] not in {"Deployment", "WorkerDeployment"}:
            continue
        for container in containers(doc):
            verb = container.get("command", ["durable-agent", "worker"])[1]
            by_verb.setdefault(verb, set()).update(
                a for a in container["args"] if a.startswith("--")
            )
    assert set(by_verb) == {"worker", "serve", "codec-server"}
    for verb, flags in by_verb.items():
        usage = subprocess.run(
            [str(BIN / "durable-agent"), verb, "--help"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert flags <= set(re.findall(r"--[a-z-]+", usage)), verb


@pytest.mark.slow  # ~10 s: a worker process starts, polls, stops
async def test_the_ready_file_exists_while_the_worker_polls_and_goes_at_sigterm(
    dev_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, queue, ready = dev_env.client, f"ready-{uuid.uuid4()}", tmp_path / "ready"
    monkeypatch.setenv(READY_FILE_VARIABLE, str(ready))
    worker = start_worker(address_of(dev_env), queue, tmp_path / "log.jsonl")
    try:
        await eventually(lambda: polls(client, queue, worker), "the worker to poll")

        async def is_ready() -> bool:
            return ready.exists()

        await eventually(is_ready, "the ready file")
        worker.send_signal(signal.SIGTERM)

        async def not_ready() -> bool:
            return not ready.exists()

        await eventually(not_ready, "the ready file to go")
        assert worker.poll() is None  # gone before the worker has drained, not when it exits
        assert await asyncio.to_thread(worker.wait, 30) == 0
    finally:
        if worker.poll() is None:
            stop(worker)
