"""Job creation refuses a family the method cannot handle, naming it (jobs API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def _model_dir(root: Path, model_type: str, architecture: str) -> Path:
    folder = root / model_type
    folder.mkdir()
    config = {"model_type": model_type, "architectures": [architecture]}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def models_root(tmp_path: Path, settings: Any) -> Path:
    settings.QUANTPLAN_LOCAL_MODEL_DIRS = [str(tmp_path)]
    return tmp_path


@pytest.mark.parametrize(
    ("method", "fmt", "model_type", "architecture", "message"),
    [
        (
            "gguf",
            "gguf-Q8_0",
            "gpt_bigcode",
            "GPTBigCodeForCausalLM",
            "does not support the architecture 'gpt_bigcode'",
        ),
        (
            "awq",
            "awq-4bit-g64",
            "qwen2_moe",
            "Qwen2MoeForCausalLM",
            "does not support Qwen2-MoE models",
        ),
        (
            "gptq",
            "gptq-4bit-g64",
            "deepseek_v2",
            "DeepseekV2ForCausalLM",
            "does not support DeepSeek-V2 models",
        ),
        (
            "rtn",
            "rtn-int4-g64",
            "deepseek_v2",
            "DeepseekV2ForCausalLM",
            "Use gguf for DeepSeek-V2 models",
        ),
    ],
)
def test_an_unsupported_family_is_a_400_naming_it(
    api: Any,
    redis_url: str,
    models_root: Path,
    method: str,
    fmt: str,
    model_type: str,
    architecture: str,
    message: str,
) -> None:
    from quantjobs.models import Job

    folder = _model_dir(models_root, model_type, architecture)
    response = api.post(
        "/api/v1/jobs/",
        {
            "method": method,
            "formats": [fmt],
            "source_kind": "local",
            "source_ref": str(folder),
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    errors = response.json()
    assert message in " ".join(errors["source_ref"]), errors
    assert not Job.objects.exists()


def test_a_supported_family_is_queued(
    api: Any, redis_url: str, models_root: Path
) -> None:
    folder = _model_dir(models_root, "deepseek_v2", "DeepseekV2ForCausalLM")
    response = api.post(
        "/api/v1/jobs/",
        {
            "method": "gguf",
            "formats": ["gguf-Q8_0"],
            "source_kind": "local",
            "source_ref": str(folder),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "QUEUED"
