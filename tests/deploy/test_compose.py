"""deploy/compose.yaml: valid for Docker Compose v2, and wired the way the README says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import compose_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV = {
    "DJANGO_SECRET_KEY": "k" * 60,
    "DJANGO_ALLOWED_HOSTS": "quantplan.example.com",
    "POSTGRES_PASSWORD": "pg-secret",
    "REDIS_PASSWORD": "redis-secret",
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """The file as Compose resolves it, the GPU profile included."""
    result = compose_config(COMPOSE, {**ENV, "COMPOSE_PROFILES": "gpu"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_it_parses_as_yaml() -> None:
    assert yaml.safe_load(COMPOSE.read_text())["services"]


def test_docker_compose_accepts_it(rendered: dict[str, Any]) -> None:
    assert set(rendered["services"]) == {
        "postgres", "redis", "migrate", "web", "worker-cpu", "worker-gpu",
    }  # fmt: skip


def test_docker_compose_rejects_what_the_schema_forbids(tmp_path: Path) -> None:
    # The validator is real: an unknown service key fails.
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["web"]["replicas_typo"] = 2
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))

    result = compose_config(path, ENV)

    assert result.returncode != 0 and "replicas_typo" in result.stderr


@pytest.mark.parametrize("missing", sorted(ENV))
def test_it_refuses_to_start_without_a_secret(missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}

    result = compose_config(COMPOSE, env)

    assert result.returncode != 0
    assert missing in result.stderr


def test_the_web_runs_gunicorn_with_the_production_settings(
    rendered: dict[str, Any],
) -> None:
    web = rendered["services"]["web"]

    assert web["build"]["dockerfile"] == "deploy/docker/web.Dockerfile"
    assert web["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert web["environment"]["DATABASE_URL"].startswith(
        "postgres://quantplan:pg-secret@postgres:"
    )
    assert web["environment"]["REDIS_URL"] == "redis://:redis-secret@redis:6379/0"
    # Published on loopback only: a TLS proxy sits in front.
    assert [(p["host_ip"], p["published"]) for p in web["ports"]] == [
        ("127.0.0.1", "8000")
    ]
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert web["healthcheck"]["test"] == [
        "CMD",
        "python",
        "deploy/healthcheck.py",
        "web",
    ]


def test_workers_consume_their_queues_and_the_gpu_worker_reserves_a_gpu(
    rendered: dict[str, Any],
) -> None:
    cpu = rendered["services"]["worker-cpu"]
    gpu = rendered["services"]["worker-gpu"]

    assert (
        cpu["environment"]["QUEUES"] == "cpu" and gpu["environment"]["QUEUES"] == "gpu"
    )
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert device["count"] == 1
    assert "deploy" not in cpu
    assert gpu["build"]["dockerfile"] == "deploy/docker/worker-gpu.Dockerfile"


def test_there_is_no_beat_the_workers_reap(rendered: dict[str, Any]) -> None:
    for name, service in rendered["services"].items():
        command = " ".join(service.get("command") or [])
        assert "beat" not in name and " beat" not in command, name


def test_web_and_workers_share_the_media_volume(rendered: dict[str, Any]) -> None:
    def media(service: str) -> list[tuple[str, str]]:
        return [
            (v["source"], v["target"])
            for v in rendered["services"][service]["volumes"]
            if v["type"] == "volume"
        ]

    for service in ("web", "worker-cpu", "worker-gpu"):
        assert ("media", "/data/media") in media(service), service
        env = rendered["services"][service]["environment"]
        assert env["QUANTPLAN_MEDIA_ROOT"] == "/data/media"


def test_the_broker_never_evicts_and_the_stores_have_health_checks(
    rendered: dict[str, Any],
) -> None:
    redis = rendered["services"]["redis"]
    postgres = rendered["services"]["postgres"]

    assert "--maxmemory-policy noeviction" in " ".join(redis["command"])
    assert "--appendonly yes" in " ".join(redis["command"])
    assert redis["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    for service in (redis, postgres):
        assert ":" in service["image"] and not service["image"].endswith(":latest")
        assert "ports" not in service  # internal network only
