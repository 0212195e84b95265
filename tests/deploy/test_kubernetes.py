"""deploy/k8s: every manifest passes the Kubernetes schemas, and the pieces fit together."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import k8s_errors, yaml_documents

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
REQUIRED_ENV = {"DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS",
                "DATABASE_URL", "REDIS_URL", "QUANTPLAN_MEDIA_ROOT"}  # fmt: skip


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [
        d
        for name in kustomization["resources"]
        for d in yaml_documents((K8S / name).read_text())
    ]


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def _pod(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return _find(docs, kind, name)["spec"]["template"]["spec"]


def test_every_manifest_parses_and_is_listed_in_the_kustomization() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])

    for path in _manifests():
        assert yaml_documents(path.read_text()), path.name
    assert {p.name for p in _manifests()} - listed == {"secret.example.yaml"}


def test_every_builtin_kind_passes_the_kubernetes_schemas_strictly() -> None:
    documents = [d for p in _manifests() for d in yaml_documents(p.read_text())]

    assert k8s_errors(documents) == []


def test_the_schema_validator_is_real() -> None:
    broken = yaml_documents((K8S / "web.yaml").read_text())[0]
    broken["spec"]["replicas"] = "two"
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicie"] = "Always"

    errors = k8s_errors([broken])

    assert errors and any("two" in e or "imagePullPolicie" in e for e in errors)


def test_kustomize_renders_the_whole_install() -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl, (
        "kubectl (with its built-in kustomize) is part of this machine's image"
    )
    out = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    rendered = yaml_documents(out)

    assert k8s_errors(rendered) == []
    web = _pod(rendered, "Deployment", "quantplan-web")["containers"][0]
    assert web["image"] == "registry.example.com/quantplan/web:1.0.0"
    assert all(d["metadata"].get("namespace") == "quantplan" for d in rendered
               if d["kind"] != "Namespace")  # fmt: skip


def test_config_and_secret_carry_every_required_setting(
    docs: list[dict[str, Any]],
) -> None:
    config = _find(docs, "ConfigMap", "quantplan-env")["data"]
    secret = yaml_documents((K8S / "secret.example.yaml").read_text())[0]["stringData"]

    assert REQUIRED_ENV <= set(config) | set(secret)
    assert not set(config) & {
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_PASSWORD",
    }
    assert config["DJANGO_SETTINGS_MODULE"] == "config.settings.production"


def test_web_and_workers_share_a_read_write_many_media_claim(
    docs: list[dict[str, Any]],
) -> None:
    claim = _find(docs, "PersistentVolumeClaim", "quantplan-media")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    media_root = _find(docs, "ConfigMap", "quantplan-env")["data"][
        "QUANTPLAN_MEDIA_ROOT"
    ]

    for name in ("quantplan-web", "quantplan-worker-cpu", "quantplan-worker-gpu"):
        pod = _pod(docs, "Deployment", name)
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {
            m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]
        }
        source = volumes[mounts[media_root]]["persistentVolumeClaim"]["claimName"]
        assert source == "quantplan-media", name
        env_from = {e.get("configMapRef", e.get("secretRef"))["name"]
                    for e in pod["containers"][0]["envFrom"]}  # fmt: skip
        assert env_from == {"quantplan-env", "quantplan-secrets"}, name


def test_gpu_workers_request_gpus_and_consume_the_gpu_queue(
    docs: list[dict[str, Any]],
) -> None:
    gpu = _pod(docs, "Deployment", "quantplan-worker-gpu")
    cpu = _pod(docs, "Deployment", "quantplan-worker-cpu")
    container = gpu["containers"][0]

    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "QUEUES", "value": "gpu"} in container["env"]
    assert {"name": "QUEUES", "value": "cpu"} in cpu["containers"][0]["env"]
    assert "nvidia.com/gpu" not in str(cpu["containers"][0]["resources"])
    # Scale-down waits for the running job (Celery's warm shutdown) up to the hard limit.
    assert gpu["terminationGracePeriodSeconds"] >= 4 * 3600


def test_keda_scales_gpu_workers_on_the_celery_gpu_queue(
    docs: list[dict[str, Any]],
) -> None:
    from config.celery import app

    scaled = _find(docs, "ScaledObject", "quantplan-worker-gpu")
    auth = _find(docs, "TriggerAuthentication", "quantplan-redis")
    secret = yaml_documents((K8S / "secret.example.yaml").read_text())[0]["stringData"]
    (trigger,) = scaled["spec"]["triggers"]

    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    _find(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    # Celery's Redis transport keeps a queue's waiting messages in a list named after it.
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == "gpu"
    assert "gpu" in {q.name for q in app.conf.task_queues}
    assert int(trigger["metadata"]["listLength"]) >= 1
    assert scaled["spec"]["minReplicaCount"] == 0 < scaled["spec"]["maxReplicaCount"]
    host, port = trigger["metadata"]["address"].split(":")
    assert (
        host.split(".")[0]
        == _find(docs, "Service", "quantplan-redis")["metadata"]["name"]
    )
    assert port == "6379"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "password" and ref["key"] in secret


def test_migrations_run_as_a_job_with_the_web_image(docs: list[dict[str, Any]]) -> None:
    job = _find(docs, "Job", "quantplan-migrate")
    container = job["spec"]["template"]["spec"]["containers"][0]

    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert container["image"] == "quantplan-web"


def test_every_pod_runs_as_non_root_without_privileges(
    docs: list[dict[str, Any]],
) -> None:
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, doc["metadata"]["name"]
            assert context["capabilities"]["drop"] == ["ALL"]


def test_the_ingress_terminates_tls_for_the_allowed_host(
    docs: list[dict[str, Any]],
) -> None:
    ingress = _find(docs, "Ingress", "quantplan-web")
    hosts = _find(docs, "ConfigMap", "quantplan-env")["data"][
        "DJANGO_ALLOWED_HOSTS"
    ].split(",")

    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"] and set(tls["hosts"]) <= set(hosts)
    assert {r["host"] for r in ingress["spec"]["rules"]} <= set(hosts)


def test_images_are_the_ones_the_kustomization_pins() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    pinned = {i["name"] for i in kustomization["images"]}
    used = {
        c["image"]
        for p in _manifests()
        for d in yaml_documents(p.read_text())
        if d["kind"] in ("Deployment", "Job")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert used <= pinned
    for image in (c for p in _manifests() for c in yaml_documents(p.read_text())
                  if c["kind"] == "StatefulSet"):  # fmt: skip
        tag = image["spec"]["template"]["spec"]["containers"][0]["image"]
        assert ":" in tag and not tag.endswith(":latest")


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def test_the_network_policy_lets_every_quantplan_pod_reach_the_stores(
    docs: list[dict[str, Any]],
) -> None:
    policy = _find(docs, "NetworkPolicy", "quantplan-data")
    guarded = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "StatefulSet"
        and _matches(
            policy["spec"]["podSelector"], d["spec"]["template"]["metadata"]["labels"]
        )
    }
    assert guarded == {"quantplan-postgres", "quantplan-redis"}
    sources = [rule["podSelector"] for rule in policy["spec"]["ingress"][0]["from"]
               if "podSelector" in rule]  # fmt: skip

    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert any(_matches(s, labels) for s in sources), doc["metadata"]["name"]
