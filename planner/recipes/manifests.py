"""Recipe files: shell scripts, an Ollama Modelfile, a Compose service, Kubernetes YAML."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from planner.recipes.commands import (
    llama_cpp_python_argv,
    llama_server_argv,
    shell_command,
    vllm_argv,
)
from planner.recipes.target import (
    CONTAINER_MODEL_DIR,
    Recipe,
    ServeTarget,
    check_target,
    clean,
    slug,
)

# Pinned images; bump deliberately (the flags are checked against these versions' docs).
VLLM_IMAGE = "vllm/vllm-openai:v0.15.1"
LLAMA_CPP_IMAGE = "ghcr.io/ggml-org/llama.cpp:server-b10423"
LLAMA_CPP_CUDA_IMAGE = "ghcr.io/ggml-org/llama.cpp:server-cuda-b10423"
# Loading weights (and capturing CUDA graphs) can take many minutes.
STARTUP_WAIT_S = 30 * 60
SHELL = "text/x-shellscript"
YAML = "application/yaml"


class _Dumper(yaml.SafeDumper):
    """Safe YAML without anchors: each manifest reads on its own."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _header(t: ServeTarget, what: str) -> str:
    if t.device_kind == "cpu":
        device = "CPU"
    else:
        device = f"{t.gpus}x {clean(t.gpu_name) or t.device_kind.upper()}"
    lines = [
        f"{what}: {clean(t.model_label)} ({t.format}) on {device}",
        f"Planned: {t.concurrency} sequence(s) of {t.context_tokens:,} tokens, "
        f"KV cache {t.kv_cache_dtype}"
        + (f"; from {clean(t.source)}" if t.source else ""),
        *(clean(note, 300) for note in t.notes),
    ]
    if t.model_is_local:
        lines.append(
            f"Put {t.model_ref} in {clean(t.model_dir)} "
            f"(mounted as {CONTAINER_MODEL_DIR} in containers)."
        )
    return "".join(f"# {line}\n" for line in lines)


def _script(t: ServeTarget, what: str, argv: Sequence[str], head: int) -> str:
    return (
        "#!/bin/sh\n" + _header(t, what) + "set -eu\n" + shell_command(argv, head=head)
    )


def _ollama(t: ServeTarget) -> str:
    # Ollama reads the file beside the Modelfile; num_ctx is per sequence.
    return (
        _header(t, "Ollama Modelfile")
        + f"# Keep this file beside the GGUF, then: ollama create {t.served_name} -f Modelfile\n"
        + f"# Set OLLAMA_NUM_PARALLEL={t.concurrency} on the Ollama server for "
        + f"{t.concurrency} concurrent sequence(s).\n"
        + f"FROM ./{t.model_ref}\n"
        + f"PARAMETER num_ctx {t.context_tokens}\n"
        + f"PARAMETER num_gpu {t.llama_cpp_gpu_layers}\n"
    )


def _image(t: ServeTarget) -> str:
    if t.engine == "vllm":
        return VLLM_IMAGE
    return (
        LLAMA_CPP_CUDA_IMAGE if t.gpu_resource == "nvidia.com/gpu" else LLAMA_CPP_IMAGE
    )


def _container_args(t: ServeTarget) -> list[str]:
    if t.engine == "vllm":
        return vllm_argv(t, container=True)
    return llama_server_argv(t, container=True)


def _yaml(t: ServeTarget, what: str, documents: Sequence[Mapping[str, Any]]) -> str:
    body = "---\n".join(
        yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=False, width=1000)
        for doc in documents
    )
    return _header(t, what) + body


def _compose(t: ServeTarget) -> str:
    port = t.listen_port
    if t.model_is_local:
        volumes = [f"{t.model_dir.rstrip('/') or '/'}:{CONTAINER_MODEL_DIR}:ro"]
    else:
        volumes = ["./hf-cache:/root/.cache/huggingface"]
    url = f"http://127.0.0.1:{port}/health"
    if t.engine == "vllm":
        probe = [
            "CMD",
            "python3",
            "-c",
            f"import urllib.request as u; u.urlopen({url!r}, timeout=5)",
        ]
    else:
        probe = ["CMD", "curl", "-fsS", url]
    service: dict[str, Any] = {
        "image": _image(t),
        "command": _container_args(t),
        "ports": [
            f"127.0.0.1:{port}:{port}"
        ],  # publish through a TLS proxy, not directly
        "volumes": volumes,
        "restart": "unless-stopped",
        "healthcheck": {
            "test": probe,
            "interval": "30s",
            "timeout": "10s",
            "retries": 3,
            "start_period": f"{STARTUP_WAIT_S // 60}m",
        },
    }
    if not t.model_is_local:
        service["environment"] = {"HF_TOKEN": "${HF_TOKEN:-}"}  # for gated models
    if t.engine == "vllm":
        service["ipc"] = "host"  # tensor-parallel workers share memory via /dev/shm
    if t.gpu_resource == "nvidia.com/gpu":
        device = {"driver": "nvidia", "count": t.gpus, "capabilities": ["gpu"]}
        service["deploy"] = {"resources": {"reservations": {"devices": [device]}}}
    return _yaml(
        t, "Docker Compose service", [{"services": {slug(t.served_name): service}}]
    )


def _kubernetes(t: ServeTarget) -> str:
    name = slug(t.served_name)
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "quantplan-recipes",
    }
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if t.gpu_resource:
        requests[t.gpu_resource] = limits[t.gpu_resource] = t.gpus
    if t.host_memory_bytes > 0:
        requests["memory"] = f"{math.ceil(t.host_memory_bytes / 2**20)}Mi"
    if t.model_is_local:
        volumes: list[dict[str, Any]] = [
            {
                "name": "models",
                "persistentVolumeClaim": {"claimName": "models", "readOnly": True},
            }
        ]
        mounts: list[dict[str, Any]] = [
            {"name": "models", "mountPath": CONTAINER_MODEL_DIR, "readOnly": True}
        ]
    else:
        volumes = [{"name": "hf-cache", "emptyDir": {}}]
        mounts = [{"name": "hf-cache", "mountPath": "/root/.cache/huggingface"}]
    if t.engine == "vllm":
        volumes.append(
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
        )
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    health = {"httpGet": {"path": "/health", "port": "http"}}
    container: dict[str, Any] = {
        "name": "server",
        "image": _image(t),
        "args": _container_args(t),
        "ports": [{"name": "http", "containerPort": t.listen_port}],
        "resources": {
            k: v for k, v in (("requests", requests), ("limits", limits)) if v
        },
        "volumeMounts": mounts,
        "startupProbe": {
            **health,
            "periodSeconds": 10,
            "failureThreshold": STARTUP_WAIT_S // 10,
        },
        "readinessProbe": {**health, "periodSeconds": 10},
        "livenessProbe": {**health, "periodSeconds": 30, "failureThreshold": 3},
    }
    if not t.model_is_local:
        token = {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": True}}
        container["env"] = [{"name": "HF_TOKEN", "valueFrom": token}]
    pod: dict[str, Any] = {"containers": [container], "volumes": volumes}
    if t.gpu_resource:
        pod["tolerations"] = [
            {"key": t.gpu_resource, "operator": "Exists", "effect": "NoSchedule"}
        ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "strategy": {
                "type": "Recreate"
            },  # never two copies waiting for the same GPUs
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": t.listen_port, "targetPort": "http"}],
        },
    }
    return _yaml(t, "Kubernetes Deployment and Service", [deployment, service])


def recipes_for_target(target: ServeTarget) -> list[Recipe]:
    """Every recipe for the target's engine, in the order the pages show them."""
    t = check_target(target)
    name = t.served_name
    out: list[Recipe] = []
    if t.engine == "llama.cpp":
        server = llama_server_argv(t)
        out.append(
            Recipe(
                id="llama-server",
                title="llama.cpp server",
                filename=f"serve-{name}-llama-server.sh",
                media_type=SHELL,
                content=_script(t, "llama.cpp llama-server", server, head=1),
            )
        )
        if not t.cpu_moe_layers:  # llama-cpp-python cannot keep experts in RAM
            out.append(
                Recipe(
                    id="llama-cpp-python",
                    title="llama-cpp-python server",
                    filename=f"serve-{name}-llama-cpp-python.sh",
                    media_type=SHELL,
                    content=_script(
                        t,
                        "llama-cpp-python server "
                        "(pip install 'llama-cpp-python[server]')",
                        llama_cpp_python_argv(server),
                        head=3,
                    ),
                )
            )
        if t.format.startswith("gguf-") and not t.cpu_moe_layers:
            out.append(
                Recipe(
                    id="ollama",
                    title="Ollama Modelfile",
                    filename="Modelfile",
                    media_type="text/plain",
                    content=_ollama(t),
                )
            )
    else:
        out.append(
            Recipe(
                id="vllm",
                title="vLLM server",
                filename=f"serve-{name}-vllm.sh",
                media_type=SHELL,
                content=_script(
                    t, "vLLM OpenAI-compatible server", vllm_argv(t), head=3
                ),
            )
        )
    out.append(
        Recipe(
            id="compose",
            title="Docker Compose service",
            filename=f"{name}-compose.yaml",
            media_type=YAML,
            content=_compose(t),
        )
    )
    out.append(
        Recipe(
            id="kubernetes",
            title="Kubernetes Deployment",
            filename=f"{name}-k8s.yaml",
            media_type=YAML,
            content=_kubernetes(t),
        )
    )
    return out
