"""Serving recipes: the commands and manifests that run a planned or quantized model.

From one format of a plan report, or from a finished job's artifact, this package
writes a llama.cpp ``llama-server`` command (and the same settings for
llama-cpp-python's server), a ``vllm serve`` command, an Ollama Modelfile, a Docker
Compose service and a Kubernetes Deployment, each filled with the plan's numbers:
context, concurrency, GPUs, memory share and KV cache type.

Plain Python (no Django), so the API, the pages and the tests share it. Every value
that reaches a shell goes through ``shlex.quote``; YAML is written by PyYAML's safe
dumper; model ids and file names are checked before use, and free text (model
names) reaches only comments, without control characters.

Each recipe is a dict ``{id, title, filename, content, media_type}``.
"""

from __future__ import annotations

from planner.recipes.commands import llama_cpp_python_argv, llama_server_argv, vllm_argv
from planner.recipes.manifests import recipes_for_target
from planner.recipes.sources import (
    default_format,
    plan_formats,
    recipes_for_artifact,
    recipes_for_capacity_candidate,
    recipes_for_plan_result,
)
from planner.recipes.target import Recipe, RecipeError, ServeTarget

__all__ = [
    "Recipe",
    "RecipeError",
    "ServeTarget",
    "default_format",
    "llama_cpp_python_argv",
    "llama_server_argv",
    "plan_formats",
    "recipes_for_artifact",
    "recipes_for_capacity_candidate",
    "recipes_for_plan_result",
    "recipes_for_target",
    "vllm_argv",
]
