"""Every catalog family through the real GGUF backend, and the support table.

For a tiny random checkpoint of each family (tiny_families.py): llama.cpp's
converter makes the F16 base, llama.cpp quantizes it to Q8_0 and Q4_K_M, loads
and evaluates it; the file is within 0.5% of the planner's ``artifact_bytes``
for the same config.json and every tensor has the type the planner predicts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from planner.engine.catalog import load_models
from planner.engine.gguf_rules import gguf_tensor_types
from planner.engine.spec import model_spec_from_config
from planner.engine.weights import artifact_bytes
from quantjobs.backends.base import EvaluateRequest, QuantizeRequest
from quantjobs.backends.families import (
    FAMILY_NAMES,
    PLAN_ONLY_FAMILIES,
    SUPPORTED_FAMILIES,
    unsupported_reason,
)
from quantjobs.backends.gguf import GgufBackend
from quantjobs.evaltext import default_eval_text
from tests.quantjobs.backends.tiny_families import (
    FAMILIES,
    build_family,
    train_spm_tokenizer,
)


def nothing(*_args: object) -> None:
    return None


# ---------------------------------------------------------------- the table


def test_every_catalog_family_is_in_the_table_and_has_a_tiny_checkpoint() -> None:
    # gpt-oss and Llama 4 are planned only, each with a stated reason
    catalog = {m.spec.model_type for m in load_models()} - set(PLAN_ONLY_FAMILIES)
    assert catalog <= set(FAMILY_NAMES)
    assert catalog <= SUPPORTED_FAMILIES["gguf"]
    # Gemma 3's text checkpoint (gemma3_text) stands for both Gemma 3 types.
    built = {name.split(".")[0] for name in FAMILIES} | {"gemma3_text"}
    assert set(FAMILY_NAMES) <= built


def test_a_plan_only_family_is_refused_with_its_reason() -> None:
    for method in SUPPORTED_FAMILIES:
        reason = unsupported_reason(method, "gpt_oss")
        assert reason and "gpt-oss" in reason and "MXFP4" in reason
    assert "Llama 4" in (unsupported_reason("gguf", "llama4_text") or "")
    assert {"gpt_oss", "llama4_text"} <= {m.spec.model_type for m in load_models()}


def test_an_unsupported_family_is_named_with_what_to_use_instead() -> None:
    assert unsupported_reason("gguf", "deepseek_v2") is None
    assert unsupported_reason("awq", "llama") is None
    assert unsupported_reason("awq", "qwen2_moe") == (
        "The awq method does not support Qwen2-MoE models (model_type 'qwen2_moe'): "
        "autoawq 0.2.9 has no Qwen2-MoE support. Use gguf for Qwen2-MoE models."
    )
    unknown = unsupported_reason("gguf", "mamba")
    assert unknown is not None
    assert "architecture 'mamba'" in unknown and "DeepSeek-V3" in unknown
    assert unsupported_reason("selftest", "mamba") is None  # no model involved


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="session")
def spm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_spm_tokenizer(tmp_path_factory.mktemp("spm"))


@pytest.fixture(scope="session")
def family_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("families")


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_tiny_checkpoint_of_the_family_goes_through_the_gguf_backend(
    family: str, spm_model: Path, family_root: Path
) -> None:
    source = build_family(family, family_root / family, spm_model)
    config = json.loads((source / "config.json").read_text())
    spec = model_spec_from_config(config)
    work = family_root / f"work-{family}"
    work.mkdir()
    backend = GgufBackend()
    for gguf_type in ("Q8_0", "Q4_K_M"):
        result = backend.quantize(
            QuantizeRequest(
                source_path=source,
                source_kind="hf",
                format=f"gguf-{gguf_type}",
                work_dir=work / gguf_type,
                shared_dir=work,  # one F16 base for both types, as jobs do
            ),
            nothing,
            nothing,
        )
        assert result.metadata["base"]["architecture"] == config["architectures"][0]
        size = result.artifact_path.stat().st_size
        projected = artifact_bytes(spec, f"gguf-{gguf_type}")
        assert abs(projected - size) <= 0.005 * size, (gguf_type, projected, size)

        from gguf import GGUFReader

        written = {
            t.name: t.tensor_type.name
            for t in GGUFReader(str(result.artifact_path)).tensors
        }
        assert written == dict(gguf_tensor_types(spec, gguf_type)), gguf_type

        measured = backend.evaluate(
            EvaluateRequest(
                model_path=result.artifact_path,
                model_kind="gguf",
                reference_path=result.reference_path,
                reference_kind="gguf",
                text=default_eval_text(),
                context_tokens=64,
                max_chunks=1,
                generation_tokens=4,
            ),
            nothing,
            nothing,
        )
        assert math.isfinite(measured.perplexity) and measured.perplexity > 1
        assert math.isfinite(measured.base_perplexity)
        assert measured.tokens_evaluated > 0


def test_the_backend_refuses_an_unproven_family_before_converting(
    tmp_path: Path,
) -> None:
    # Job creation refuses it first; a Hugging Face id whose config could not be
    # read then (hub unreachable from the web server) is caught here.
    from quantjobs.backends.base import BackendError

    model = tmp_path / "model"
    model.mkdir()
    config = {"model_type": "mamba", "architectures": ["MambaForCausalLM"]}
    (model / "config.json").write_text(json.dumps(config))
    request = QuantizeRequest(
        source_path=model, source_kind="hf", format="gguf-Q8_0", work_dir=tmp_path / "w"
    )
    with pytest.raises(BackendError, match="does not support the architecture 'mamba'"):
        GgufBackend().quantize(request, nothing, nothing)
    assert list((tmp_path / "w").iterdir()) == []
