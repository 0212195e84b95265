"""What a recipe is filled with (``ServeTarget``), and the checks every field passes."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import TypedDict

from planner.engine.formats import FormatError, FormatSpec, parse_format
from planner.engine.kv_cache import CacheDtypeError, normalize_cache_dtype
from planner.hub import validate_hf_id

LLAMA_SERVER_PORT = 8080
VLLM_PORT = 8000
CONTAINER_MODEL_DIR = "/models"
DEFAULT_CONTEXT_TOKENS = 4096
MAX_CONTEXT_TOKENS = 10_000_000
MAX_CONCURRENCY = 100_000
MAX_GPUS = 64
ENGINES = ("llama.cpp", "vllm")
ALL_LAYERS = 999  # llama.cpp: offload every layer (more than any model has)
MAX_LAYERS = 10_000
DEVICE_KINDS = ("gpu", "apple", "cpu")
HOSTS = ("127.0.0.1", "0.0.0.0", "::1", "::", "localhost")

# KV cache types each engine has (planner name -> engine name).
LLAMA_CPP_CACHE = {
    "f32": "f32",
    "f16": "f16",
    "bf16": "bf16",
    "q8_0": "q8_0",
    "q4_0": "q4_0",
}
VLLM_CACHE = {
    "f16": "auto",  # vLLM's "auto" is the model's 16-bit dtype
    "bf16": "auto",
    "f32": "auto",
    "fp8": "fp8",
    "fp8_e4m3": "fp8_e4m3",
    "fp8_e5m2": "fp8_e5m2",
}
GPU_RESOURCES = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}

_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_SERVED_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


class RecipeError(ValueError):
    """A recipe cannot be written from this input; the message says what to change."""


class Recipe(TypedDict):
    """One downloadable recipe."""

    id: str
    title: str
    filename: str
    content: str
    media_type: str


@dataclass(frozen=True)
class ServeTarget:
    """Everything a recipe is filled with: what to serve, where, and how much of it."""

    engine: str  # "llama.cpp" or "vllm"
    format: str  # canonical format id, e.g. "gguf-Q4_K_M"
    model_label: str  # display name, for comments
    served_name: str  # the model name clients send to the OpenAI-style API
    model_ref: str  # a Hugging Face repo id, or a file/folder name under model_dir
    model_is_local: bool
    context_tokens: int  # per sequence
    concurrency: int  # sequences served at once
    gpus: int
    device_kind: str = "gpu"  # "gpu", "apple" or "cpu"
    gpu_vendor: str = "nvidia"
    gpu_name: str = ""
    gpu_memory_utilization: float = 0.9
    kv_cache_dtype: str = "f16"  # planner name (f16, q8_0, fp8, ...)
    weight_dtype: str = "auto"  # vLLM --dtype
    quantization: str | None = None  # vLLM --quantization, when the weights need it
    host_memory_bytes: int = 0
    # llama.cpp partial offload on one GPU, as planner/engine/offload.py decided:
    # the last ``gpu_layers`` layers on the GPU (None: all of them), and the experts
    # of the first ``cpu_moe_layers`` layers kept in host RAM.
    gpu_layers: int | None = None
    cpu_moe_layers: int = 0
    model_dir: str = "./models"  # where the bare commands find local model files
    host: str = "127.0.0.1"
    port: int = 0  # 0: the engine's usual port
    source: str = ""  # "plan …" or "job …", for comments
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def uses_gpu(self) -> bool:
        """Whether the engine offloads to an accelerator (a CPU plan does not)."""
        return self.device_kind in ("gpu", "apple")

    @property
    def llama_cpp_gpu_layers(self) -> int:
        """llama.cpp's ``-ngl``: every layer, the planned share, or none on a CPU."""
        if not self.uses_gpu:
            return 0
        return ALL_LAYERS if self.gpu_layers is None else self.gpu_layers

    @property
    def gpu_resource(self) -> str | None:
        """The device a container reserves: only discrete GPUs have one."""
        return GPU_RESOURCES.get(self.gpu_vendor) if self.device_kind == "gpu" else None

    @property
    def listen_port(self) -> int:
        """The port the server listens on."""
        if self.port:
            return self.port
        return LLAMA_SERVER_PORT if self.engine == "llama.cpp" else VLLM_PORT

    def model_path(self, *, container: bool) -> str:
        """Where the engine loads the model from: a hub id, or a file path."""
        if not self.model_is_local:
            return self.model_ref
        base = CONTAINER_MODEL_DIR if container else self.model_dir.rstrip("/") or "/"
        return f"{base}/{self.model_ref}"


def clean(text: object, limit: int = 200) -> str:
    """Free text made safe for a comment line: no control characters, bounded."""
    return _CONTROL.sub(" ", str(text)).strip()[:limit]


def slug(text: str, limit: int = 63) -> str:
    """Lower-case letters, digits and '-': a DNS label, a file stem, a served name."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return out[:limit].strip("-") or "model"


def check_int(name: str, value: object, low: int, high: int) -> int:
    """A whole number in [low, high], or RecipeError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or int(value) != value
    ):
        raise RecipeError(f"{name}: must be a whole number, got {value!r}")
    if not low <= int(value) <= high:
        raise RecipeError(f"{name}: {int(value)} is out of range ({low} to {high:,})")
    return int(value)


def check_fraction(name: str, value: object) -> float:
    """A number in (0, 1], or RecipeError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecipeError(
            f"{name}: must be a number above 0 and at most 1, got {value!r}"
        )
    if not 0 < float(value) <= 1:
        raise RecipeError(f"{name}: must be above 0 and at most 1, got {value!r}")
    return float(value)


def check_filename(name: object) -> str:
    """A plain file or folder name: nothing a shell, a path or YAML could misread."""
    if not isinstance(name, str) or not _FILENAME.fullmatch(name) or ".." in name:
        raise RecipeError(
            f"file name {str(name)[:80]!r} may use only letters, digits, '.', '-' and "
            "'_', and must not start with '.' or contain '..'"
        )
    return name


def check_format(fmt: str) -> FormatSpec:
    """The planner's format, or RecipeError with its close matches."""
    try:
        return parse_format(fmt)
    except FormatError as exc:
        raise RecipeError(str(exc)) from None


def check_cache(dtype: object) -> str:
    """The planner's name of a KV cache type, or RecipeError."""
    try:
        return normalize_cache_dtype(str(dtype))
    except CacheDtypeError as exc:
        raise RecipeError(str(exc)) from None


def engine_cache(engine: str, cache: object) -> tuple[str, list[str]]:
    """The KV cache type ``engine`` has nearest to ``cache``, and a note if it differs."""
    name = check_cache(cache)
    if engine == "llama.cpp" and name not in LLAMA_CPP_CACHE:
        return "q8_0", [f"llama.cpp has no {name} KV cache; q8_0 is the nearest."]
    if engine == "vllm" and name not in VLLM_CACHE:
        return "fp8", [f"vLLM has no {name} KV cache; fp8 is the nearest."]
    return name, []


def check_target(target: ServeTarget) -> ServeTarget:
    """Validate every field that reaches a command or a manifest."""
    if target.engine not in ENGINES:
        raise RecipeError(f"engine must be llama.cpp or vllm, got {target.engine!r}")
    if target.model_is_local:
        check_filename(target.model_ref)
    else:
        try:
            repo = validate_hf_id(target.model_ref)
        except ValueError as exc:
            raise RecipeError(str(exc)) from None
        if repo != target.model_ref or "/" not in repo:
            raise RecipeError(
                f"model id {target.model_ref[:120]!r} must be 'namespace/name'"
            )
    check_int("context_tokens", target.context_tokens, 1, MAX_CONTEXT_TOKENS)
    check_int("concurrency", target.concurrency, 1, MAX_CONCURRENCY)
    check_int("gpus", target.gpus, 1, MAX_GPUS)
    check_int("port", target.port, 0, 65535)
    check_int("cpu_moe_layers", target.cpu_moe_layers, 0, MAX_LAYERS)
    if target.gpu_layers is not None:
        check_int("gpu_layers", target.gpu_layers, 0, MAX_LAYERS)
    if (target.gpu_layers is not None or target.cpu_moe_layers) and (
        target.engine != "llama.cpp" or target.device_kind != "gpu" or target.gpus != 1
    ):
        raise RecipeError(
            "partial offload (gpu_layers, cpu_moe_layers) is planned for llama.cpp on "
            "one GPU only"
        )
    check_fraction("gpu_memory_utilization", target.gpu_memory_utilization)
    if (
        not target.model_dir
        or _CONTROL.search(target.model_dir)
        or len(target.model_dir) > 1024
    ):
        raise RecipeError("model_dir must be a folder path on one line")
    if target.device_kind not in DEVICE_KINDS:
        raise RecipeError(
            f"device_kind must be gpu, apple or cpu, got {target.device_kind!r}"
        )
    if not _SERVED_NAME.fullmatch(target.served_name):
        raise RecipeError(
            f"served name {target.served_name[:80]!r} is not a plain name"
        )
    if target.host not in HOSTS:
        raise RecipeError("host must be a loopback or wildcard address")
    if target.weight_dtype not in (
        "auto",
        "half",
        "float16",
        "bfloat16",
        "float",
        "float32",
    ):
        raise RecipeError(f"weight dtype {target.weight_dtype!r} is not one vLLM knows")
    if target.quantization not in (None, "fp8"):
        raise RecipeError(
            f"quantization {target.quantization!r} is not written by recipes"
        )
    cache = check_cache(target.kv_cache_dtype)
    if cache not in (LLAMA_CPP_CACHE if target.engine == "llama.cpp" else VLLM_CACHE):
        raise RecipeError(f"{target.engine} has no {cache} KV cache")
    return replace(target, kv_cache_dtype=cache)
