"""Serving recipes: only documented engine options, filled with the plan's numbers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from planner import engine
from planner.recipes import (
    RecipeError,
    ServeTarget,
    default_format,
    llama_cpp_python_argv,
    llama_server_argv,
    recipes_for_artifact,
    recipes_for_plan_result,
    recipes_for_target,
)
from tests.deploy.tools import command_argv, compose_config, k8s_errors, yaml_documents

# --- What the engines document ----------------------------------------------------
# llama-server options, copied from ggml-org/llama.cpp tools/server/README.md
# (commit 00dc8057ab28c9cb4c79a6dd6dfce07fe779f63b), "Common params" and
# "Server-specific params".
LLAMA_SERVER_FLAGS = {
    "-m", "--model", "-a", "--alias", "-c", "--ctx-size", "-np", "--parallel",
    "-ngl", "--gpu-layers", "--n-gpu-layers", "-fa", "--flash-attn",
    "-ctk", "--cache-type-k", "-ctv", "--cache-type-v", "--host", "--port",
    "-t", "--threads", "-b", "--batch-size", "-ub", "--ubatch-size", "-sm",
    "--split-mode", "-ts", "--tensor-split", "-mg", "--main-gpu", "-kvu", "--kv-unified",
    "--api-key", "--api-key-file", "--metrics", "--jinja", "-cb", "--cont-batching",
    # common/arg.cpp of the llama.cpp that llama-cpp-python 0.3.36 vendors
    "-ncmoe", "--n-cpu-moe", "-cmoe", "--cpu-moe", "-ot", "--override-tensor",
}  # fmt: skip
# "-ctk, --cache-type-k TYPE ... allowed values: f32, f16, bf16, q8_0, q4_0, q4_1,
# iq4_nl, q5_0, q5_1"; "-fa, --flash-attn [on|off|auto]".
LLAMA_SERVER_CACHE_TYPES = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl",
                            "q5_0", "q5_1"}  # fmt: skip
LLAMA_SERVER_FLASH_ATTN = {"on", "off", "auto"}

# vllm serve options, copied from vllm-project/vllm vllm/engine/arg_utils.py
# (commit 001999d2f360c2c5da23a916510c273b1a73d06c, EngineArgs.add_cli_args) and
# vllm/entrypoints/openai/cli_args.py (commit 005223338608bc94fd165a4f976c102a57bd1fc4,
# FrontendArgs: host, port, api_key, ...).
VLLM_SERVE_FLAGS = {
    "--model", "--served-model-name", "--dtype", "--kv-cache-dtype", "--max-model-len",
    "--tensor-parallel-size", "-tp", "--pipeline-parallel-size", "-pp",
    "--gpu-memory-utilization", "--max-num-seqs", "--max-num-batched-tokens",
    "--quantization", "-q", "--enforce-eager", "--trust-remote-code", "--download-dir",
    "--revision", "--enable-prefix-caching", "--swap-space", "--cpu-offload-gb",
    "--block-size", "--seed", "--host", "--port", "--api-key", "--ssl-keyfile",
    "--ssl-certfile", "--root-path",
}  # fmt: skip
VLLM_DTYPES = {
    "auto",
    "half",
    "float16",
    "bfloat16",
    "float",
    "float32",
}  # --dtype choices
VLLM_KV_CACHE_DTYPES = {
    "auto",
    "fp8",
    "fp8_e5m2",
    "fp8_e4m3",
}  # --kv-cache-dtype choices
# vllm/model_executor/layers/quantization/__init__.py
# (commit 0034007debee2a009e030804f2cde7953aff78c6), QuantizationMethods.
VLLM_QUANTIZATION_METHODS = {
    "aqlm", "awq", "deepspeedfp", "tpu_int8", "fp8", "ptpc_fp8", "fbgemm_fp8",
    "deepgemm_fp8", "modelopt", "modelopt_fp4", "marlin", "bitblas", "gguf",
    "gptq_marlin_24", "gptq_marlin", "gptq_bitblas", "awq_marlin", "gptq",
    "compressed-tensors", "bitsandbytes", "qqq", "hqq", "experts_int8", "neuron_quant",
    "ipex", "quark", "moe_wna16", "torchao", "auto-round",
}  # fmt: skip

# Ollama Modelfile instructions and parameters, copied from ollama/ollama
# docs/modelfile.md (commit 037a28baf30a440b6cc0d5208dfc5f2c3118c753).
OLLAMA_INSTRUCTIONS = {"FROM", "PARAMETER", "TEMPLATE", "SYSTEM", "ADAPTER", "LICENSE"}
OLLAMA_PARAMETERS = {
    "mirostat", "mirostat_eta", "mirostat_tau", "num_ctx", "num_gqa", "num_gpu",
    "num_thread", "repeat_last_n", "repeat_penalty", "temperature", "seed", "stop",
    "tfs_z", "num_predict", "top_k", "top_p",
}  # fmt: skip

SAMPLE_ID = "smollm2-135m-instruct-q4_1"


def _llama_cpp_python_flags() -> set[str]:
    """The options of llama-cpp-python's server: its pydantic settings' fields
    (llama_cpp/server/settings.py of the installed llama-cpp-python)."""
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    return {
        f"--{name}"
        for name in (*ModelSettings.model_fields, *ServerSettings.model_fields)
    }


def _flags(argv: list[str], *, skip: int) -> list[str]:
    return [word for word in argv[skip:] if word.startswith("-")]


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def _report(
    model: str, gpu: str, formats: tuple[str, ...], **kw: Any
) -> dict[str, Any]:
    request = engine.PlanRequest(
        model=engine.get_model(model).spec,
        gpu=engine.get_gpu(gpu),
        formats=formats,
        **kw,
    )
    return engine.plan(request).to_dict()


# (model, gpu, formats, request) covering both engines, TP, CPU and cache types.
PLANS = [
    ("llama-3.2-1b", "h100-sxm",
     ("awq-4bit-g128", "gptq-4bit-g128", "fp8", "bf16", "int8", "gguf-Q4_K_M"),
     {"context_tokens": 8192, "concurrency": 4, "kv_cache_dtype": "fp8",
      "gpu_memory_utilization": 0.85}),
    ("llama-3.1-70b", "a100-80gb", ("bf16", "awq-4bit-g128"),
     {"context_tokens": 16384, "concurrency": 8}),
    ("qwen2.5-7b", "t4", ("fp16", "bf16", "gptq-4bit-g128"),
     {"context_tokens": 4096, "concurrency": 2}),
    ("qwen2.5-7b", "cpu-generic-ddr5", ("gguf-Q4_K_M", "gguf-Q8_0", "fp16"),
     {"context_tokens": 4096, "concurrency": 2, "engine": "llama.cpp",
      "kv_cache_dtype": "q8_0"}),
    ("llama-3-8b", "rtx-4090", ("gguf-Q4_K_M", "gguf-IQ4_XS"),
     {"context_tokens": 8192, "concurrency": 3, "engine": "llama.cpp",
      "kv_cache_dtype": "q4_0"}),
    # partial offload: layers (dense) and experts (MoE) in host RAM
    ("llama-3.1-70b", "rtx-4090", ("gguf-Q4_K_M",),
     {"context_tokens": 4096, "engine": "llama.cpp", "gpus": 1}),
    ("mixtral-8x7b", "rtx-4090", ("gguf-Q4_K_M",),
     {"context_tokens": 4096, "engine": "llama.cpp", "gpus": 1}),
]  # fmt: skip


def _all_plan_recipes() -> list[tuple[str, str, list[Any]]]:
    out = []
    for model, gpu, formats, kw in PLANS:
        report = _report(model, gpu, formats, **kw)
        for fmt in formats:
            recipes = recipes_for_plan_result(report, fmt, request=kw)
            out.append((f"{model}/{gpu}/{fmt}", fmt, recipes))
    return out


@pytest.fixture(scope="module")
def plan_recipes() -> list[tuple[str, str, list[Any]]]:
    return _all_plan_recipes()


def _by_id(recipes: list[Any]) -> dict[str, Any]:
    return {r["id"]: r for r in recipes}


# --- only documented options ------------------------------------------------------


def test_llama_server_recipes_use_only_documented_flags_and_values(
    plan_recipes: Any,
) -> None:
    seen = 0
    for label, _fmt, recipes in plan_recipes:
        recipe = _by_id(recipes).get("llama-server")
        if recipe is None:
            continue
        seen += 1
        argv = command_argv(recipe["content"])
        assert argv[0] == "llama-server", label
        assert set(_flags(argv, skip=1)) <= LLAMA_SERVER_FLAGS, label
        assert _value(argv, "-fa") in LLAMA_SERVER_FLASH_ATTN
        for flag in ("-ctk", "-ctv"):
            if flag in argv:
                assert _value(argv, flag) in LLAMA_SERVER_CACHE_TYPES, label
    assert seen >= 5


def test_vllm_recipes_use_only_documented_flags_and_choices(plan_recipes: Any) -> None:
    seen = 0
    for label, _fmt, recipes in plan_recipes:
        recipe = _by_id(recipes).get("vllm")
        if recipe is None:
            continue
        seen += 1
        argv = command_argv(recipe["content"])
        assert argv[:2] == ["vllm", "serve"], label
        assert set(_flags(argv, skip=3)) <= VLLM_SERVE_FLAGS, label
        assert _value(argv, "--dtype") in VLLM_DTYPES, label
        assert _value(argv, "--kv-cache-dtype") in VLLM_KV_CACHE_DTYPES, label
        if "--quantization" in argv:
            assert _value(argv, "--quantization") in VLLM_QUANTIZATION_METHODS, label
    assert seen >= 8


def test_container_arguments_use_the_same_documented_flags(plan_recipes: Any) -> None:
    for label, _fmt, recipes in plan_recipes:
        compose = yaml_documents(_by_id(recipes)["compose"]["content"])[0]
        (service,) = compose["services"].values()
        args = service["command"]
        documented = (
            VLLM_SERVE_FLAGS if "vllm" in service["image"] else LLAMA_SERVER_FLAGS
        )
        assert set(_flags(args, skip=0)) <= documented, label
        k8s = yaml_documents(_by_id(recipes)["kubernetes"]["content"])[0]
        assert k8s["spec"]["template"]["spec"]["containers"][0]["args"] == args, label


def test_llama_cpp_python_recipes_use_only_its_settings(plan_recipes: Any) -> None:
    documented = _llama_cpp_python_flags()
    for label, _fmt, recipes in plan_recipes:
        recipe = _by_id(recipes).get("llama-cpp-python")
        if recipe is None:
            continue
        argv = command_argv(recipe["content"])
        assert argv[:3] == ["python", "-m", "llama_cpp.server"], label
        assert set(_flags(argv, skip=3)) <= documented, label


def test_ollama_modelfiles_use_only_documented_instructions(plan_recipes: Any) -> None:
    seen = 0
    for label, _fmt, recipes in plan_recipes:
        recipe = _by_id(recipes).get("ollama")
        if recipe is None:
            continue
        seen += 1
        lines = [
            ln for ln in recipe["content"].splitlines() if ln and not ln.startswith("#")
        ]
        assert {ln.split()[0] for ln in lines} <= OLLAMA_INSTRUCTIONS, label
        params = {ln.split()[1] for ln in lines if ln.startswith("PARAMETER ")}
        assert params <= OLLAMA_PARAMETERS, label
        assert lines[0].startswith("FROM ./") and lines[0].endswith(".gguf")
    assert seen >= 4


# --- the plan's numbers -----------------------------------------------------------


def test_vllm_recipe_carries_the_plans_numbers() -> None:
    kw = {"context_tokens": 16384, "concurrency": 8, "gpu_memory_utilization": 0.85}
    report = _report("llama-3.1-70b", "a100-80gb", ("bf16",), **kw)
    result = report["results"][0]

    argv = command_argv(
        _by_id(recipes_for_plan_result(report, "bf16", request=kw))["vllm"]["content"]
    )

    assert argv[2] == "meta-llama/Llama-3.1-70B"  # 16-bit weights come from the hub
    assert _value(argv, "--max-model-len") == "16384"
    assert _value(argv, "--max-num-seqs") == "8"
    assert _value(argv, "--gpu-memory-utilization") == "0.85"
    assert _value(argv, "--tensor-parallel-size") == str(result["gpus"])
    assert result["gpus"] > 1
    assert _value(argv, "--dtype") == "bfloat16"
    assert _value(argv, "--kv-cache-dtype") == "auto"
    assert "--quantization" not in argv


def test_quantized_checkpoints_let_vllm_pick_the_kernel_and_fp8_is_requested() -> None:
    kw = {"context_tokens": 8192, "concurrency": 4, "kv_cache_dtype": "fp8"}
    report = _report("llama-3.2-1b", "h100-sxm", ("awq-4bit-g128", "fp8"), **kw)

    awq = command_argv(
        _by_id(recipes_for_plan_result(report, "awq-4bit-g128", request=kw))["vllm"][
            "content"
        ]
    )
    fp8 = command_argv(
        _by_id(recipes_for_plan_result(report, "fp8", request=kw))["vllm"]["content"]
    )

    # awq/gptq: config.json names the method; an explicit flag would force the slow kernel
    assert "--quantization" not in awq and _value(awq, "--dtype") == "float16"
    assert awq[2] == "./models/llama-3-2-1b-awq-4bit-g128"
    assert _value(fp8, "--quantization") == "fp8"
    assert _value(fp8, "--kv-cache-dtype") == "fp8"


def test_a_gpu_without_bf16_serves_16_bit_weights_as_float16() -> None:
    report = _report("qwen2.5-7b", "t4", ("bf16",), context_tokens=4096)

    argv = command_argv(
        _by_id(recipes_for_plan_result(report, "bf16"))["vllm"]["content"]
    )

    assert _value(argv, "--dtype") == "float16"


def test_llama_server_recipe_gives_each_sequence_the_planned_context() -> None:
    kw = {
        "context_tokens": 8192,
        "concurrency": 3,
        "engine": "llama.cpp",
        "kv_cache_dtype": "q4_0",
    }
    report = _report("llama-3-8b", "rtx-4090", ("gguf-Q4_K_M",), **kw)

    recipes = _by_id(recipes_for_plan_result(report, "gguf-q4_k_m", request=kw))
    argv = command_argv(recipes["llama-server"]["content"])
    python = command_argv(recipes["llama-cpp-python"]["content"])
    modelfile = recipes["ollama"]["content"]

    assert _value(argv, "-c") == str(8192 * 3) and _value(argv, "-np") == "3"
    assert _value(argv, "-ngl") == "999" and _value(argv, "-fa") == "on"
    assert _value(argv, "-ctk") == _value(argv, "-ctv") == "q4_0"
    assert _value(python, "--n_ctx") == "8192" and _value(python, "--type_k") == "2"
    assert (
        "PARAMETER num_ctx 8192" in modelfile and "OLLAMA_NUM_PARALLEL=3" in modelfile
    )


def test_cpu_plans_offload_nothing_and_reserve_no_gpu() -> None:
    kw = {
        "context_tokens": 4096,
        "concurrency": 2,
        "engine": "llama.cpp",
        "kv_cache_dtype": "q8_0",
    }
    report = _report("qwen2.5-7b", "cpu-generic-ddr5", ("gguf-Q8_0",), **kw)

    recipes = _by_id(recipes_for_plan_result(report, "gguf-Q8_0", request=kw))
    argv = command_argv(recipes["llama-server"]["content"])
    compose = yaml_documents(recipes["compose"]["content"])[0]
    (service,) = compose["services"].values()
    deployment = yaml_documents(recipes["kubernetes"]["content"])[0]
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]

    assert _value(argv, "-ngl") == "0"
    assert "deploy" not in service and service["image"].endswith(":server-b10423")
    assert "nvidia.com/gpu" not in resources.get("requests", {})
    assert resources["requests"]["memory"].endswith("Mi")


def test_gpu_recipes_reserve_the_planned_gpus() -> None:
    report = _report("llama-3.1-70b", "a100-80gb", ("bf16",), context_tokens=8192)
    gpus = report["results"][0]["gpus"]

    recipes = _by_id(recipes_for_plan_result(report, "bf16"))
    (service,) = yaml_documents(recipes["compose"]["content"])[0]["services"].values()
    deployment = yaml_documents(recipes["kubernetes"]["content"])[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]

    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": gpus, "capabilities": ["gpu"]}
    assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus


def test_a_fp16_plan_on_llama_cpp_serves_a_f16_gguf() -> None:
    kw = {"context_tokens": 4096, "engine": "llama.cpp"}
    report = _report("qwen2.5-7b", "cpu-generic-ddr5", ("fp16",), **kw)

    recipes = _by_id(recipes_for_plan_result(report, "fp16", request=kw))

    assert "vllm" not in recipes
    assert command_argv(recipes["llama-server"]["content"])[2].endswith("-F16.gguf")


def test_an_awq_artifact_is_unpacked_and_served_by_vllm_on_a_gpu() -> None:
    recipes = _by_id(
        recipes_for_artifact(
            filename="SmolLM2-awq-4bit-g128.tar", fmt="awq-4bit-g128", model_name="smol"
        )
    )

    argv = command_argv(recipes["vllm"]["content"])
    (service,) = yaml_documents(recipes["compose"]["content"])[0]["services"].values()

    assert argv[2] == "./models/SmolLM2-awq-4bit-g128"
    assert "--strip-components=1" in recipes["vllm"]["content"]
    assert "--quantization" not in argv and _value(argv, "--dtype") == "float16"
    assert service["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 1
    assert set(recipes) == {"vllm", "compose", "kubernetes"}


def test_default_format_is_the_recommendation() -> None:
    report = _report("llama-3.2-1b", "h100-sxm", ("bf16", "gguf-Q4_K_M"))

    assert default_format(report) == report["recommendation"]["format"] or (
        report["recommendation"]["format"] is None and default_format(report) == "bf16"
    )
    assert default_format({"results": []}) is None


# --- manifests validate -----------------------------------------------------------


def test_kubernetes_recipes_pass_the_kubernetes_schemas(plan_recipes: Any) -> None:
    errors = []
    for label, _fmt, recipes in plan_recipes:
        documents = yaml_documents(_by_id(recipes)["kubernetes"]["content"])
        assert [d["kind"] for d in documents] == ["Deployment", "Service"], label
        errors += [f"{label}: {e}" for e in k8s_errors(documents)]
    assert errors == []


def test_compose_recipes_pass_docker_compose_config(
    plan_recipes: Any, tmp_path: Path
) -> None:
    for label, fmt, recipes in plan_recipes[:: max(1, len(plan_recipes) // 5)]:
        path = tmp_path / f"{fmt}.yaml"
        path.write_text(_by_id(recipes)["compose"]["content"])
        result = compose_config(path, {})
        assert result.returncode == 0, f"{label}: {result.stderr}"
        assert json.loads(result.stdout)["services"], label


# --- checked input ----------------------------------------------------------------


def _target(**kw: Any) -> ServeTarget:
    base: dict[str, Any] = {
        "engine": "llama.cpp", "format": "gguf-Q4_K_M", "model_label": "m",
        "served_name": "m-gguf-q4-k-m", "model_ref": "m.gguf", "model_is_local": True,
        "context_tokens": 4096, "concurrency": 1, "gpus": 1,
    }  # fmt: skip
    return ServeTarget(**{**base, **kw})


@pytest.mark.parametrize(
    "bad",
    [
        {"model_ref": "../etc/passwd"},
        {"model_ref": "m.gguf; rm -rf ~"},
        {"model_ref": "$(reboot).gguf"},
        {"model_is_local": False, "model_ref": "not a repo"},
        {"model_is_local": False, "model_ref": "a/b/c"},
        {"served_name": "x y"},
        {"context_tokens": 0},
        {"concurrency": 10**9},
        {"gpus": 0},
        {"gpu_memory_utilization": 1.5},
        {"host": "10.0.0.1"},
        {"model_dir": "models\nrm -rf /"},
        {"kv_cache_dtype": "fp8"},  # llama.cpp has no fp8 cache
        {"engine": "tgi"},
    ],
)
def test_it_rejects_values_that_could_break_a_command(bad: dict[str, Any]) -> None:
    with pytest.raises(RecipeError):
        recipes_for_target(_target(**bad))


def test_every_value_is_shell_quoted() -> None:
    target = _target(
        model_dir="/srv/my models/$(whoami)'s", model_label="evil\nrm -rf /"
    )

    recipe = _by_id(recipes_for_target(target))["llama-server"]

    assert command_argv(recipe["content"]) == llama_server_argv(target)
    assert command_argv(recipe["content"])[2] == "/srv/my models/$(whoami)'s/m.gguf"
    assert (
        "\nrm -rf /" not in recipe["content"]
    )  # free text reaches comments only, on one line
    # The script parses as a shell script.
    subprocess.run(["sh", "-n"], input=recipe["content"], text=True, check=True)


def test_it_names_the_plans_formats_when_asked_for_another() -> None:
    report = _report("llama-3.2-1b", "h100-sxm", ("bf16", "gguf-Q4_K_M"))

    with pytest.raises(RecipeError, match="choose one of: bf16, gguf-Q4_K_M"):
        recipes_for_plan_result(report, "awq-4bit-g128")
    with pytest.raises(RecipeError, match="unknown format"):
        recipes_for_plan_result(report, "q9_x")


def test_a_report_with_model_and_gpu_objects_is_understood() -> None:
    report = _report("llama-3.2-1b", "h100-sxm", ("bf16",))
    report["model"] = {
        "id": "llama-3.2-1b",
        "hf_id": "meta-llama/Llama-3.2-1B",
        "name": "Llama",
    }
    report["gpu"] = {
        "id": "h100-sxm",
        "name": "NVIDIA H100",
        "memory_bytes": 80 * 2**30,
    }
    report["request"] = {"context_tokens": 2048, "concurrency": 5}

    argv = command_argv(
        _by_id(recipes_for_plan_result(report, "bf16"))["vllm"]["content"]
    )

    assert argv[2] == "meta-llama/Llama-3.2-1B"
    assert (
        _value(argv, "--max-model-len") == "2048"
        and _value(argv, "--max-num-seqs") == "5"
    )


def test_llama_cpp_python_translation_refuses_flags_it_cannot_honour() -> None:
    with pytest.raises(RecipeError, match="--mlock"):
        llama_cpp_python_argv(["llama-server", "-m", "x.gguf", "--mlock", "1"])
    with pytest.raises(RecipeError, match="experts in RAM"):
        llama_cpp_python_argv(["llama-server", "-m", "x.gguf", "--n-cpu-moe", "4"])


# --- partial offload (llama.cpp, one GPU) ------------------------------------------


def _offload_recipes(model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    kw = {"context_tokens": 4096, "engine": "llama.cpp", "gpus": 1}
    report = _report(model, "rtx-4090", ("gguf-Q4_K_M",), **kw)
    (result,) = report["results"]
    return result, _by_id(recipes_for_plan_result(report, "gguf-Q4_K_M", request=kw))


def test_a_dense_model_offloaded_by_layers_gets_the_planned_ngl_everywhere() -> None:
    result, recipes = _offload_recipes("llama-3.1-70b")
    planned = result["offload"]
    assert planned["flags"] == f"-ngl {planned['gpu_layers']}"
    assert 0 < planned["gpu_layers"] < 80  # some of the 80 layers stay in RAM
    server = command_argv(recipes["llama-server"]["content"])
    python = command_argv(recipes["llama-cpp-python"]["content"])
    compose = yaml_documents(recipes["compose"]["content"])[0]
    (service,) = compose["services"].values()
    k8s = yaml_documents(recipes["kubernetes"]["content"])[0]
    container = k8s["spec"]["template"]["spec"]["containers"][0]
    ngl = str(planned["gpu_layers"])
    assert _value(server, "-ngl") == ngl and "--n-cpu-moe" not in server
    assert _value(python, "--n_gpu_layers") == ngl
    assert _value(service["command"], "-ngl") == ngl
    assert _value(container["args"], "-ngl") == ngl
    assert f"PARAMETER num_gpu {ngl}" in recipes["ollama"]["content"]
    assert "Partial offload as planned" in recipes["llama-server"]["content"]
    assert "does not fit" not in recipes["llama-server"]["content"]


def test_a_moe_model_keeps_the_planned_experts_in_ram() -> None:
    result, recipes = _offload_recipes("mixtral-8x7b")
    planned = result["offload"]
    assert planned["flags"] == f"-ngl 999 --n-cpu-moe {planned['cpu_moe_layers']}"
    assert 0 < planned["cpu_moe_layers"] < 32
    server = command_argv(recipes["llama-server"]["content"])
    assert _value(server, "-ngl") == "999"
    assert _value(server, "--n-cpu-moe") == str(planned["cpu_moe_layers"])
    compose = yaml_documents(recipes["compose"]["content"])[0]
    (service,) = compose["services"].values()
    assert _value(service["command"], "--n-cpu-moe") == str(planned["cpu_moe_layers"])
    # neither llama-cpp-python nor Ollama can keep experts in RAM: no recipe for them
    assert "llama-cpp-python" not in recipes and "ollama" not in recipes


def test_a_multi_gpu_plan_names_the_one_gpu_offload_without_applying_it() -> None:
    kw = {"context_tokens": 4096, "engine": "llama.cpp"}
    report = _report("mixtral-8x7b", "rtx-4090", ("gguf-Q4_K_M",), **kw)
    (result,) = report["results"]
    assert result["gpus"] == 2 and result["offload"]
    recipes = _by_id(recipes_for_plan_result(report, "gguf-Q4_K_M", request=kw))
    server = command_argv(recipes["llama-server"]["content"])
    assert _value(server, "-ngl") == "999" and "--n-cpu-moe" not in server
    content = recipes["llama-server"]["content"]
    assert f"On one GPU instead: add {result['offload']['flags']}" in content


def test_a_capacity_candidate_with_offload_gets_its_exact_flags() -> None:
    from planner.engine.capacity import CapacityRequest, Workload, capacity_search
    from planner.recipes import recipes_for_capacity_candidate

    report = capacity_search(
        CapacityRequest(
            model=engine.get_model("mixtral-8x7b").spec,
            gpus=[engine.get_gpu("rtx-4090")],
            formats=("gguf-Q4_K_M",),
            gpu_counts=(1,),
            workload=Workload(
                requests_per_s=0.05, prompt_tokens=500, output_tokens=200
            ),
        )
    ).to_dict()
    rec = report["recommendation"]
    assert rec and rec["llama_cpp_flags"].startswith("-ngl 999 --n-cpu-moe ")
    recipes = _by_id(recipes_for_capacity_candidate(report, rec))
    server = command_argv(recipes["llama-server"]["content"])
    words = " ".join(server)
    assert rec["llama_cpp_flags"].replace("-ngl 999 ", "") in words
    assert _value(server, "-ngl") == "999" and _value(server, "-c") == "700"


def test_offload_flags_are_refused_off_llama_cpp_or_beyond_one_gpu() -> None:
    from dataclasses import replace

    from planner.recipes.manifests import recipes_for_target
    from planner.recipes.target import ServeTarget

    base = ServeTarget(
        engine="llama.cpp",
        format="gguf-Q4_K_M",
        model_label="m",
        served_name="m",
        model_ref="m.gguf",
        model_is_local=True,
        context_tokens=4096,
        concurrency=1,
        gpus=1,
        gpu_layers=10,
    )
    assert recipes_for_target(base)
    for bad in (replace(base, gpus=2), replace(base, device_kind="cpu")):
        with pytest.raises(RecipeError, match="one GPU only"):
            recipes_for_target(bad)


# --- the recipe really serves -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_the_llama_cpp_recipe_serves_the_sample_artifact(tmp_path: Path) -> None:
    from quantjobs.samples import SAMPLES, sample_path

    path = sample_path(SAMPLE_ID)
    port = _free_port()
    recipes = _by_id(
        recipes_for_artifact(
            filename=path.name, fmt=SAMPLES[SAMPLE_ID].format, model_name="smollm2-135m",
            context_tokens=512, model_dir=str(path.parent), port=port,
        )
    )  # fmt: skip
    server_argv = command_argv(recipes["llama-server"]["content"])
    argv = command_argv(recipes["llama-cpp-python"]["content"])
    # The llama-cpp-python recipe is the llama-server recipe, translated.
    assert argv == llama_cpp_python_argv(server_argv)
    assert _value(argv, "--model") == str(path) and _value(argv, "--n_ctx") == "512"
    argv[0] = sys.executable  # this project's Python, which has the server extra

    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/v1/models", timeout=2) as response:
                    models = json.load(response)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start in 120 s"
                time.sleep(0.5)
        body = json.dumps({
            "model": _value(argv, "--model_alias"), "prompt": "The capital of France is",
            "max_tokens": 8, "temperature": 0,
        }).encode()  # fmt: skip
        request = urllib.request.Request(
            f"{base}/v1/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            completion = json.load(response)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    assert models["data"][0]["id"] == "smollm2-135m-gguf-q4-1"
    text = completion["choices"][0]["text"]
    assert isinstance(text, str) and text.strip(), completion
    assert completion["usage"]["completion_tokens"] > 0


def test_every_script_parses_as_a_shell_script(plan_recipes: Any) -> None:
    for label, _fmt, recipes in plan_recipes:
        for recipe in recipes:
            if recipe["media_type"] == "text/x-shellscript":
                check = subprocess.run(["sh", "-n"], input=recipe["content"], text=True)
                assert check.returncode == 0, f"{label} {recipe['id']}"


def test_the_recipes_package_imports_no_django() -> None:
    code = (
        "import planner.recipes, sys; "
        "bad = [m for m in sys.modules if m.startswith(('django', 'rest_framework'))]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the API ----------------------------------------------------------------------


def _saved_plan(
    user: Any,
    formats: tuple[str, ...] = ("bf16", "gguf-Q4_K_M"),
    model: str = "llama-3.2-1b",
    **kw: Any,
) -> Any:
    from planner import services

    data = services.PlanInput(
        gpu="h100-sxm", model=model, formats=formats, context_tokens=8192,
        concurrency=2, **kw,
    )  # fmt: skip
    report = services.plan_compute(data=data, user=user)
    return services.plan_save(user=user, name="serving test", data=data, report=report)


def _finished_job(user: Any, *, plan: Any = None, artifacts: bool = True) -> Any:
    from quantjobs.models import Artifact, Job

    job = Job.objects.create(
        user=user, method=Job.Method.GGUF, formats=["gguf-Q4_1"],
        source_kind=Job.SourceKind.SAMPLE, source_ref=SAMPLE_ID,
        model_id="smollm2-135m-instruct", status=Job.Status.SUCCEEDED, plan=plan,
    )  # fmt: skip
    if artifacts:
        Artifact.objects.create(
            user=user, job=job, format="gguf-Q4_1",
            filename="SmolLM2-135M-Instruct.Q4_1-gguf-Q4_1.gguf",
            path=f"{user.pk}/x/SmolLM2-135M-Instruct.Q4_1-gguf-Q4_1.gguf",
            size_bytes=1, sha256="0" * 64,
        )  # fmt: skip
    return job


@pytest.mark.django_db
def test_it_lists_a_plans_recipes_for_the_chosen_format(api: Any, user: Any) -> None:
    plan = _saved_plan(user)

    response = api.get(f"/api/v1/plans/{plan.pk}/recipes/", {"format": "q4_k_m"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["format"] == "gguf-Q4_K_M"
    assert body["formats"] == ["bf16", "gguf-Q4_K_M"]
    ids = [r["id"] for r in body["recipes"]]
    assert ids == [
        "llama-server",
        "llama-cpp-python",
        "ollama",
        "compose",
        "kubernetes",
    ]
    server = command_argv(body["recipes"][0]["content"])
    assert _value(server, "-c") == str(8192 * 2) and _value(server, "-np") == "2"
    assert body["recipes"][0]["download_url"] == (
        f"/api/v1/plans/{plan.pk}/recipes/llama-server/download/?format=gguf-Q4_K_M"
    )


@pytest.mark.django_db
def test_a_saved_one_gpu_plan_serves_its_partial_offload(api: Any, user: Any) -> None:
    from planner import services

    data = services.PlanInput(
        gpu="rtx-4090", model="llama-3.1-70b", formats=("gguf-Q4_K_M",),
        context_tokens=4096, concurrency=1, engine="llama.cpp", gpus=1,
    )  # fmt: skip
    report = services.plan_compute(data=data, user=user)
    plan = services.plan_save(user=user, name="offload", data=data, report=report)
    planned = plan.report["results"][0]["offload"]

    body = api.get(f"/api/v1/plans/{plan.pk}/recipes/", {"format": "q4_k_m"}).json()

    recipes = {r["id"]: r["content"] for r in body["recipes"]}
    assert _value(command_argv(recipes["llama-server"]), "-ngl") == str(
        planned["gpu_layers"]
    )
    assert f"--n_gpu_layers {planned['gpu_layers']}" in recipes["llama-cpp-python"]


def test_without_a_format_it_serves_the_plans_recommendation(
    api: Any, user: Any
) -> None:
    plan = _saved_plan(user)

    body = api.get(f"/api/v1/plans/{plan.pk}/recipes/").json()

    assert body["format"] == default_format(plan.report)


@pytest.mark.django_db
def test_it_downloads_one_recipe_as_an_attachment(api: Any, user: Any) -> None:
    plan = _saved_plan(user)
    listed = api.get(f"/api/v1/plans/{plan.pk}/recipes/", {"format": "bf16"}).json()
    vllm = next(r for r in listed["recipes"] if r["id"] == "vllm")

    response = api.get(vllm["download_url"])

    assert response.status_code == 200
    assert (
        response["Content-Disposition"] == f'attachment; filename="{vllm["filename"]}"'
    )
    assert response["Content-Type"].startswith("text/x-shellscript")
    assert response.content.decode() == vllm["content"]


@pytest.mark.django_db
def test_it_rejects_a_format_the_plan_does_not_have(api: Any, user: Any) -> None:
    plan = _saved_plan(user)

    response = api.get(f"/api/v1/plans/{plan.pk}/recipes/", {"format": "awq-4bit-g128"})
    unknown = api.get(f"/api/v1/plans/{plan.pk}/recipes/", {"format": "<script>"})

    assert response.status_code == 400
    assert "choose one of: bf16, gguf-Q4_K_M" in response.json()["format"][0]
    assert (
        unknown.status_code == 400 and "unknown format" in unknown.json()["format"][0]
    )


@pytest.mark.django_db
def test_it_answers_404_for_an_unknown_recipe(api: Any, user: Any) -> None:
    plan = _saved_plan(user)

    response = api.get(
        f"/api/v1/plans/{plan.pk}/recipes/vllm/download/?format=gguf-Q4_K_M"
    )

    assert response.status_code == 404
    assert "llama-server" in response.json()["detail"]


@pytest.mark.django_db
def test_it_hides_another_users_plan_and_job(other_api: Any, user: Any) -> None:
    plan = _saved_plan(user)
    job = _finished_job(user)

    for url in (
        f"/api/v1/plans/{plan.pk}/recipes/",
        f"/api/v1/plans/{plan.pk}/recipes/vllm/download/",
        f"/api/v1/jobs/{job.pk}/recipes/",
        f"/api/v1/jobs/{job.pk}/recipes/llama-server/download/",
        "/api/v1/plans/not-a-uuid/recipes/",
        "/api/v1/jobs/not-a-uuid/recipes/",
    ):
        assert other_api.get(url).status_code == 404, url


@pytest.mark.django_db
def test_it_needs_a_login(client: Any, user: Any) -> None:
    plan = _saved_plan(user)

    assert client.get(f"/api/v1/plans/{plan.pk}/recipes/").status_code in (401, 403)


@pytest.mark.django_db
def test_it_serves_a_finished_jobs_artifact(api: Any, user: Any) -> None:
    job = _finished_job(user)

    response = api.get(f"/api/v1/jobs/{job.pk}/recipes/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["format"] == "gguf-Q4_1" and body["formats"] == ["gguf-Q4_1"]
    recipes = _by_id(body["recipes"])
    argv = command_argv(recipes["llama-server"]["content"])
    assert _value(argv, "-m") == "./models/SmolLM2-135M-Instruct.Q4_1-gguf-Q4_1.gguf"
    assert _value(argv, "-ngl") == "0"  # no plan: a GGUF runs on the CPU
    assert (
        "FROM ./SmolLM2-135M-Instruct.Q4_1-gguf-Q4_1.gguf"
        in recipes["ollama"]["content"]
    )
    download = api.get(recipes["compose"]["download_url"])
    assert download.status_code == 200 and download["Content-Type"].startswith(
        "application/yaml"
    )


@pytest.mark.django_db
def test_a_job_with_a_plan_of_its_model_gets_the_plans_numbers(
    api: Any, user: Any
) -> None:
    # The plan is of the sample's own model, so its numbers describe this file.
    plan = _saved_plan(
        user, formats=("gguf-Q4_1", "bf16"), model="smollm2-135m-instruct",
        kv_cache_dtype="q8_0", engine="llama.cpp",
    )  # fmt: skip
    job = _finished_job(user, plan=plan)

    body = api.get(f"/api/v1/jobs/{job.pk}/recipes/", {"format": "gguf-Q4_1"}).json()

    argv = command_argv(_by_id(body["recipes"])["llama-server"]["content"])
    assert _value(argv, "-m") == "./models/SmolLM2-135M-Instruct.Q4_1-gguf-Q4_1.gguf"
    assert _value(argv, "-c") == str(8192 * 2) and _value(argv, "-ctk") == "q8_0"
    assert _value(argv, "-ngl") == "999"


@pytest.mark.django_db
def test_a_stand_in_job_is_served_as_the_model_it_quantized(
    api: Any, user: Any
) -> None:
    # A Llama 3.2 1B plan, measured on the sample: never served as Llama.
    plan = _saved_plan(
        user, formats=("gguf-Q4_1", "bf16"), kv_cache_dtype="q8_0", engine="llama.cpp"
    )
    job = _finished_job(user, plan=plan)

    body = api.get(f"/api/v1/jobs/{job.pk}/recipes/", {"format": "gguf-Q4_1"}).json()

    for recipe in body["recipes"]:
        content = recipe["content"]
        assert "smollm2-135m-instruct" in content, recipe["id"]
        assert "stand-in for Llama 3.2 1B" in content, recipe["id"]
        # Llama is named only as what this file stands in for, never as what it is.
        assert content.count("Llama 3.2 1B") == content.count(
            "stand-in for Llama 3.2"
        ), recipe["id"]
        assert "llama-3.2-1b" not in content.lower() and "llama-3-2-1b" not in content
    argv = command_argv(_by_id(body["recipes"])["llama-server"]["content"])
    assert _value(argv, "-a") == "smollm2-135m-instruct-gguf-q4-1"
    assert _value(argv, "-ngl") == "0"  # the plan's GPUs are the 1B model's, not its


@pytest.mark.django_db
def test_a_job_without_a_file_yet_answers_409(api: Any, user: Any) -> None:
    job = _finished_job(user, artifacts=False)

    response = api.get(f"/api/v1/jobs/{job.pk}/recipes/")

    assert response.status_code == 409
    assert response.json()["code"] == "no_artifact"


@pytest.mark.django_db
def test_a_job_names_its_formats_when_asked_for_another(api: Any, user: Any) -> None:
    job = _finished_job(user)

    response = api.get(f"/api/v1/jobs/{job.pk}/recipes/", {"format": "gguf-Q8_0"})

    assert response.status_code == 400
    assert "choose one of: gguf-Q4_1" in response.json()["format"][0]


@pytest.mark.django_db
def test_the_recipes_include_renders_copy_buttons_and_downloads(
    api: Any, user: Any
) -> None:
    from django.template.loader import render_to_string

    plan = _saved_plan(user)
    recipe_set = api.get(
        f"/api/v1/plans/{plan.pk}/recipes/", {"format": "gguf-Q4_K_M"}
    ).json()

    html = render_to_string("frontend/_recipes.html", {"recipe_set": recipe_set})

    for recipe in recipe_set["recipes"]:
        assert f'data-copy="#recipe-{recipe["id"]}-content"' in html
        assert f'id="recipe-{recipe["id"]}-content"' in html
        assert f'href="{recipe["download_url"].replace("&", "&amp;")}"' in html
    assert 'name="recipe_format"' in html and '<option value="bf16">' in html
    assert "This job has no file" in render_to_string(
        "frontend/_recipes.html", {"recipe_error": "This job has no file"}
    )
