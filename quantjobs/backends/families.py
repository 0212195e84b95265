"""Which architecture families each quantization method supports.

One table, checked when a job is created so that an unsupported model is
refused with a message naming its family, never half-way through a job. The
entries are what was proven on tiny random checkpoints of each family
(tests/quantjobs/backends/test_families.py and tiny_families.py):

* ``gguf``: llama.cpp's own converter, quantizer and runtime handle every
  family of the planner's catalog (convert, Q8_0 and Q4_K_M, load, evaluate).
* ``rtn`` and ``gptq`` (torch, this project) load the model with the
  transformers 4.51.3 class of its ``model_type`` and never run a repository's
  own code, so a family transformers lacks (DeepSeek-V2 is remote code) or
  whose causal-LM class is a multimodal wrapper (Gemma 3 with vision) is
  refused; so is Qwen2-MoE, whose 1-output shared-expert gate they cannot pack.
* ``awq`` goes through autoawq 0.2.9, which needs its own per-family module
  list as well; it has none for Qwen2-MoE and Gemma 3, and its Gemma 2,
  Qwen3-MoE and DeepSeek-V3 ones fail on tiny checkpoints under transformers
  4.51.3.

Plain data and a function: imported by job creation (Django side) and usable
by backends alike.
"""

from __future__ import annotations

__all__ = [
    "FAMILY_NAMES",
    "PLAN_ONLY_FAMILIES",
    "SUPPORTED_FAMILIES",
    "family_name",
    "unsupported_reason",
]

# model_type -> the name people know the family by.
FAMILY_NAMES: dict[str, str] = {
    "llama": "Llama",
    "mistral": "Mistral",
    "mixtral": "Mixtral",
    "qwen2": "Qwen2",
    "qwen2_moe": "Qwen2-MoE",
    "qwen3": "Qwen3",
    "qwen3_moe": "Qwen3-MoE",
    "gemma": "Gemma",
    "gemma2": "Gemma 2",
    "gemma3": "Gemma 3",
    "gemma3_text": "Gemma 3 (text)",
    "phi3": "Phi-3",
    "deepseek_v2": "DeepSeek-V2",
    "deepseek_v3": "DeepSeek-V3",
}

# Catalog families the planner sizes but no job quantizes here, and why.
PLAN_ONLY_FAMILIES: dict[str, tuple[str, str]] = {
    "gpt_oss": (
        "gpt-oss",
        "its released checkpoint is already quantized (MXFP4 experts) and "
        "transformers 4.51.3 has no gpt-oss class; plan it, and serve ggml-org's "
        "MXFP4 GGUF",
    ),
    "llama4_text": (
        "Llama 4",
        "no tiny Llama 4 checkpoint is built and tested through the job pipeline "
        "yet; plan it, and quantize it with llama.cpp's own tools",
    ),
}

_CATALOG = frozenset(FAMILY_NAMES)
_TORCH = _CATALOG - {"deepseek_v2", "gemma3"}

# method -> model_types a job may be created for.
SUPPORTED_FAMILIES: dict[str, frozenset[str]] = {
    "gguf": _CATALOG,
    "rtn": _TORCH - {"qwen2_moe"},
    "gptq": _TORCH - {"qwen2_moe"},
    "awq": _TORCH - {"qwen2_moe", "qwen3_moe", "gemma2", "gemma3_text", "deepseek_v3"},
}

# Why a method lacks a family, where there is more to say than "not supported".
_WHY: dict[tuple[str, str], str] = {
    **{
        (m, "deepseek_v2"): "transformers 4.51.3 has no DeepSeek-V2 class (it is "
        "the repository's own code, which workers never run)"
        for m in ("rtn", "gptq", "awq")
    },
    **{
        (m, "gemma3"): "its transformers class is the multimodal Gemma 3 wrapper; "
        "use the text-only checkpoint (model_type gemma3_text)"
        for m in ("rtn", "gptq", "awq")
    },
    **{
        (m, "qwen2_moe"): "its shared-expert gate (1 output) and router (60 experts "
        "in Qwen1.5-MoE) are quantized with the other Linear layers, and their rows "
        "do not fill the 4-bit format's 8-value words"
        for m in ("rtn", "gptq")
    },
    ("awq", "qwen2_moe"): "autoawq 0.2.9 has no Qwen2-MoE support",
    ("awq", "gemma3_text"): "autoawq 0.2.9 has no Gemma 3 support",
    ("awq", "qwen3_moe"): "autoawq 0.2.9's Qwen3-MoE module fails under "
    "transformers 4.51.3 (an index error in its calibration pass)",
    ("awq", "gemma2"): "autoawq 0.2.9's Gemma 2 module fails under transformers "
    "4.51.3 (an index error in its calibration pass)",
    ("awq", "deepseek_v3"): "autoawq 0.2.9's DeepSeek-V3 module expects the "
    "repository's own model code, not transformers' class (an index error in its "
    "calibration pass)",
}


def family_name(model_type: str) -> str:
    """The family's usual name, or the raw ``model_type`` when it is not one we know."""
    if model_type in PLAN_ONLY_FAMILIES:
        return PLAN_ONLY_FAMILIES[model_type][0]
    return FAMILY_NAMES.get(model_type, model_type)


def unsupported_reason(method: str, model_type: str) -> str | None:
    """None when ``method`` supports ``model_type``, else a sentence saying what to do."""
    supported = SUPPORTED_FAMILIES.get(method)
    if supported is None or model_type in supported:
        return None
    others = [
        m for m, types in sorted(SUPPORTED_FAMILIES.items()) if model_type in types
    ]
    name = family_name(model_type)
    why = _WHY.get((method, model_type))
    if model_type in PLAN_ONLY_FAMILIES:
        return (
            f"Quantplan jobs do not quantize {name} models (model_type "
            f"{model_type!r}): {PLAN_ONLY_FAMILIES[model_type][1]}."
        )
    if model_type not in FAMILY_NAMES:
        known = ", ".join(sorted({FAMILY_NAMES[t] for t in supported}))
        return (
            f"The {method} method does not support the architecture "
            f"{model_type!r} (model_type in config.json); it supports {known}."
        )
    advice = f" Use {' or '.join(others)} for {name} models." if others else ""
    return (
        f"The {method} method does not support {name} models "
        f"(model_type {model_type!r}): {why or 'not supported'}.{advice}"
    )
