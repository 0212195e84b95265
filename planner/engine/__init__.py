"""Quantplan's planning engine: plain Python, no Django.

Size a model in a weight format, fit it onto GPUs under an engine, estimate its
speed, cost and quality loss, and recommend a format. See ``plan()``.
"""

from __future__ import annotations

from .catalog import (
    ApiPrice,
    CatalogError,
    CatalogModel,
    GpuPrice,
    GpuSpec,
    PublishedSize,
    get_api_price,
    get_gpu,
    get_model,
    gpu_spec_from_dict,
    load_api_prices,
    load_gpus,
    load_models,
    load_published_sizes,
)
from .cost import (
    HOURS_PER_MONTH,
    CostEstimate,
    QuantJobEstimate,
    hourly_price_usd,
    quantization_job_estimate,
)
from .formats import FormatError, FormatSpec, list_formats, parse_format
from .ggml import GGML_TYPES, GgmlType
from .gguf_file import gguf_file_bytes
from .gguf_rules import (
    gguf_bits_per_weight,
    gguf_fallback_count,
    gguf_tensor_types,
)
from .gguf_spec import GgufTensor, model_spec_from_gguf
from .gguf_types import GGUF_FILE_TYPES
from .kv_cache import CACHE_DTYPES, CacheDtypeError, kv_cache_bytes
from .memo import plan_json
from .plan import (
    PlanError,
    PlanReport,
    PlanRequest,
    PlanResult,
    clear_caches,
    plan,
)
from .quality import expected_quality_loss, measured_quality, quality_table
from .recommend import Recommendation, pareto_front
from .runtime import (
    ENGINES,
    MemoryEstimate,
    estimate_memory,
    fewest_gpus,
    max_concurrency,
    max_context_tokens,
)
from .spec import ModelSpec, SpecError, model_spec_from_config
from .spec_io import model_spec_from_dict, model_spec_to_dict
from .speed import SpeedEstimate, estimate_speed
from .tensors import (
    ParameterBreakdown,
    TensorInfo,
    parameter_breakdown,
    tensor_inventory,
)
from .weights import (
    WeightLayout,
    artifact_bytes,
    tensor_parallel_weight_shares,
    weight_layout,
    weights_bytes,
)

__all__ = [
    "CACHE_DTYPES",
    "ENGINES",
    "GGML_TYPES",
    "GGUF_FILE_TYPES",
    "HOURS_PER_MONTH",
    "ApiPrice",
    "CacheDtypeError",
    "CatalogError",
    "CatalogModel",
    "CostEstimate",
    "FormatError",
    "FormatSpec",
    "GgmlType",
    "GgufTensor",
    "GpuPrice",
    "GpuSpec",
    "MemoryEstimate",
    "ModelSpec",
    "ParameterBreakdown",
    "PlanError",
    "PlanReport",
    "PlanRequest",
    "PlanResult",
    "PublishedSize",
    "QuantJobEstimate",
    "Recommendation",
    "SpecError",
    "SpeedEstimate",
    "TensorInfo",
    "WeightLayout",
    "artifact_bytes",
    "clear_caches",
    "estimate_memory",
    "estimate_speed",
    "expected_quality_loss",
    "fewest_gpus",
    "get_api_price",
    "get_gpu",
    "get_model",
    "gguf_bits_per_weight",
    "gguf_fallback_count",
    "gguf_file_bytes",
    "gguf_tensor_types",
    "gpu_spec_from_dict",
    "hourly_price_usd",
    "kv_cache_bytes",
    "list_formats",
    "load_api_prices",
    "load_gpus",
    "load_models",
    "load_published_sizes",
    "max_concurrency",
    "max_context_tokens",
    "measured_quality",
    "model_spec_from_config",
    "model_spec_from_dict",
    "model_spec_from_gguf",
    "model_spec_to_dict",
    "parameter_breakdown",
    "pareto_front",
    "parse_format",
    "plan",
    "plan_json",
    "quality_table",
    "quantization_job_estimate",
    "tensor_inventory",
    "tensor_parallel_weight_shares",
    "weight_layout",
    "weights_bytes",
]
