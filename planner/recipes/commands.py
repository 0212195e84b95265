"""Server command lines: ``llama-server``, llama-cpp-python's server, ``vllm serve``.

Each returns an argv list (no shell involved); ``shell_script`` quotes every word
with ``shlex.quote`` when a recipe prints one.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from planner.recipes.target import (
    ALL_LAYERS,
    DEFAULT_CONTEXT_TOKENS,
    LLAMA_CPP_CACHE,
    VLLM_CACHE,
    RecipeError,
    ServeTarget,
    check_target,
)

__all__ = [
    "ALL_LAYERS",
    "llama_cpp_python_argv",
    "llama_server_argv",
    "shell_command",
    "vllm_argv",
]
# llama.cpp's ggml type ids, as llama-cpp-python's --type_k/--type_v take them.
GGML_TYPE_IDS = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8, "bf16": 30}


def _flat(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return [word for pair in pairs for word in pair]


def llama_server_argv(target: ServeTarget, *, container: bool = False) -> list[str]:
    """``llama-server`` arguments: one slot per planned sequence, each of full context.

    ``container``: the arguments of the server image (its entrypoint is the binary),
    listening on all addresses inside the container.
    """
    t = check_target(target)
    pairs = [
        ("-m", t.model_path(container=container)),
        ("-a", t.served_name),
        # -c is the whole KV pool, split evenly between the -np slots.
        ("-c", str(t.context_tokens * t.concurrency)),
        ("-np", str(t.concurrency)),
        ("-ngl", str(t.llama_cpp_gpu_layers)),
        ("-fa", "on"),  # the plan assumes flash attention; a quantized V cache needs it
    ]
    if t.cpu_moe_layers:
        # the experts of the first N layers stay in RAM (planner/engine/offload.py)
        pairs.append(("--n-cpu-moe", str(t.cpu_moe_layers)))
    if t.kv_cache_dtype != "f16":
        cache = LLAMA_CPP_CACHE[t.kv_cache_dtype]
        pairs += [("-ctk", cache), ("-ctv", cache)]
    pairs += [
        ("--host", "0.0.0.0" if container else t.host),
        ("--port", str(t.listen_port)),
    ]
    return ([] if container else ["llama-server"]) + _flat(pairs)


def llama_cpp_python_argv(
    server_argv: Sequence[str], *, python: str = "python"
) -> list[str]:
    """llama-cpp-python's server with the settings of a ``llama-server`` command.

    It answers one request at a time, so it gets one slot's context (``-c / -np``).
    """
    args = list(server_argv)
    if args[:1] == ["llama-server"]:
        args = args[1:]
    if len(args) % 2:
        raise RecipeError("llama-server arguments must come as flag/value pairs")
    opts = dict(zip(args[::2], args[1::2], strict=True))
    known = {"-m", "-a", "-c", "-np", "-ngl", "-fa", "-ctk", "-ctv", "--host", "--port"}
    if "--n-cpu-moe" in opts:
        raise RecipeError(
            "llama-cpp-python has no setting that keeps MoE experts in RAM "
            "(llama-server's --n-cpu-moe); serve this plan with llama-server"
        )
    if set(opts) - known:
        unknown = ", ".join(sorted(set(opts) - known))
        raise RecipeError(f"llama-cpp-python has no setting for {unknown}")
    if "-m" not in opts:
        raise RecipeError("a llama-server command needs -m MODEL")
    slots = max(1, int(opts.get("-np", "1")))
    pairs = [
        ("--model", opts["-m"]),
        ("--n_ctx", str(int(opts.get("-c", DEFAULT_CONTEXT_TOKENS)) // slots)),
        ("--n_gpu_layers", opts.get("-ngl", "0")),
        ("--flash_attn", "true" if opts.get("-fa") == "on" else "false"),
    ]
    if "-a" in opts:
        pairs.append(("--model_alias", opts["-a"]))
    for flag, setting in (("-ctk", "--type_k"), ("-ctv", "--type_v")):
        if flag in opts:
            if opts[flag] not in GGML_TYPE_IDS:
                raise RecipeError(f"llama-cpp-python has no cache type {opts[flag]!r}")
            pairs.append((setting, str(GGML_TYPE_IDS[opts[flag]])))
    pairs += [
        ("--host", opts.get("--host", "127.0.0.1")),
        ("--port", opts.get("--port", "8000")),
    ]
    return [python, "-m", "llama_cpp.server", *_flat(pairs)]


def vllm_argv(target: ServeTarget, *, container: bool = False) -> list[str]:
    """``vllm serve`` arguments (the container form names the model with ``--model``)."""
    t = check_target(target)
    model = t.model_path(container=container)
    pairs = [
        ("--served-model-name", t.served_name),
        ("--dtype", t.weight_dtype),
        ("--max-model-len", str(t.context_tokens)),
        ("--max-num-seqs", str(t.concurrency)),
        ("--gpu-memory-utilization", f"{t.gpu_memory_utilization:g}"),
        ("--tensor-parallel-size", str(t.gpus)),
        ("--kv-cache-dtype", VLLM_CACHE[t.kv_cache_dtype]),
    ]
    if t.quantization:
        pairs.append(("--quantization", t.quantization))
    pairs += [
        ("--host", "0.0.0.0" if container else t.host),
        ("--port", str(t.listen_port)),
    ]
    head = ["--model", model] if container else ["vllm", "serve", model]
    return head + _flat(pairs)


def shell_command(argv: Sequence[str], *, head: int) -> str:
    """``exec`` of a command over several lines: the program, then a flag a line."""
    words = [shlex.quote(a) for a in argv]
    lines = [" ".join(words[:head])]
    i = head
    while i < len(words):
        pair = i + 1 < len(words) and not words[i + 1].startswith("-")
        lines.append(" ".join(words[i : i + 2]) if pair else words[i])
        i += 2 if pair else 1
    return "exec " + " \\\n  ".join(lines) + "\n"
