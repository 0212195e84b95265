"""Plans: resolve the model and GPU a user named, run the engine, save the result.

The pages, the API and ``manage.py plan`` all call ``plan_compute``; none of them
holds a rule of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser

from planner import engine, measurements
from planner.engine.runtime import TENSOR_PARALLEL_SIZES
from planner.models import Comparison, Plan

DEFAULT_FORMATS = (
    "fp16",
    "fp8",
    "int8",
    "gptq-4bit-g128",
    "awq-4bit-g128",
    "gguf-Q8_0",
    "gguf-Q6_K",
    "gguf-Q5_K_M",
    "gguf-Q4_K_M",
    "gguf-Q3_K_M",
    "gguf-Q2_K",
)
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_DEPTH = 20
_T = TypeVar("_T")


class PlanLimitReached(Exception):
    """The user has as many saved plans as allowed."""


class PlanInputError(ValueError):
    """Input a plan cannot use; ``field`` names what to change."""

    def __init__(self, message: str, *, field: str = "non_field_errors") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PlanInput:
    """Everything a plan needs, as the pages, API and CLI collect it."""

    gpu: str
    model: str = ""
    config: dict[str, Any] | None = None
    upload: str = ""  # one of the user's uploads (a GGUF or a model archive), by id
    path: str = ""  # a .gguf (or split set, or model folder) in the local model dirs
    gpus: int | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS
    context_tokens: int = 8192
    concurrency: int = 1
    engine: str = "vllm"
    utilization: float = 0.5
    gpu_memory_utilization: float = 0.9
    kv_cache_dtype: str = "f16"
    prompt_tokens: int = 1024
    output_tokens: int = 256
    api_price: str | None = None
    price_usd_per_hour: float | None = None
    # Owning the GPUs: the electricity price (None: the engine's stated default).
    electricity_usd_per_kwh: float | None = None
    max_quality_loss_pct: float | None = None
    min_tokens_per_s: float | None = None
    max_ttft_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def config_validate(config: Any) -> dict[str, Any]:
    """Check a pasted or uploaded config.json before the engine reads it."""
    if not isinstance(config, dict):
        raise PlanInputError(
            "config.json must be a JSON object ({...}).", field="config"
        )
    from config.parsers import json_depth

    if json_depth(config, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH:
        raise PlanInputError(
            f"config.json is nested more than {MAX_CONFIG_DEPTH} levels deep; paste the "
            "model's own config.json.",
            field="config",
        )
    if len(json.dumps(config)) > MAX_CONFIG_BYTES:
        raise PlanInputError(
            "config.json is larger than 1 MB; paste the model's own.", field="config"
        )
    return config


def config_parse_text(text: str) -> dict[str, Any]:
    """Parse config.json text with an error that points at the line."""
    if len(text.encode()) > MAX_CONFIG_BYTES:
        raise PlanInputError(
            "config.json is larger than 1 MB; paste the model's own.", field="config"
        )
    from config.parsers import JsonLimitError, loads_limited

    try:
        data = loads_limited(text, max_depth=MAX_CONFIG_DEPTH)
    except JsonLimitError as exc:
        raise PlanInputError(f"config.json: {exc}", field="config") from None
    except ValueError as exc:
        raise PlanInputError(f"config.json is {exc}", field="config") from None
    return config_validate(data)


def config_model_name(config: dict[str, Any]) -> str:
    """The name a config.json gives its model (``_name_or_path``, else its architecture)."""
    for key in ("_name_or_path", "name_or_path", "model_name"):
        value = config.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().rstrip("/").split("/")[-1][:200] or "custom"
    archs = config.get("architectures")
    if isinstance(archs, list) and archs and isinstance(archs[0], str):
        return archs[0][:200]
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type.strip():
        return model_type.strip()[:200]
    return "custom"


def model_resolve(
    *,
    model: str,
    config: dict[str, Any] | None,
    upload: str = "",
    path: str = "",
    user: AbstractBaseUser | None = None,
    any_path: bool = False,
) -> tuple[engine.ModelSpec, str]:
    """The model spec and its id, from a pasted config, an upload, a local GGUF or
    model folder, the catalog or the hub.

    Paths must lie under the local model folders (QUANTPLAN_LOCAL_MODEL_DIRS)
    unless ``any_path`` (``manage.py plan``, run by the operator). A GGUF is read
    in the sandboxed inspector, never by this process.
    """
    if upload:
        return _model_from_upload(upload, user)
    if path or (model.strip().lower().endswith(".gguf") and config is None):
        return _model_from_path(path or model.strip(), any_path=any_path)
    if config is not None:
        config = config_validate(config)
        model_id = model or config_model_name(config)
        try:
            spec = engine.model_spec_from_config(config, model_id=model_id)
        except engine.SpecError as exc:
            raise PlanInputError(f"config.json: {exc}", field="config") from None
        return spec, model_id
    model = (model or "").strip()
    if not model:
        raise PlanInputError(
            "Choose a model from the catalog, or paste its config.json.", field="model"
        )
    try:
        entry = engine.catalog.get_model(model)
    except engine.CatalogError as catalog_error:
        # A config.json path is read by `manage.py plan` only: a web request naming
        # one must not open files on the server.
        if "/" in model:
            return _model_from_hub(model)
        raise PlanInputError(str(catalog_error), field="model") from None
    return entry.spec, entry.id


def _model_from_upload(
    upload_id: str, user: AbstractBaseUser | None
) -> tuple[engine.ModelSpec, str]:
    from planner.model_sources import ModelSourceError, model_sources

    try:
        spec = model_sources().upload_spec(user=user, upload_id=upload_id)
    except ModelSourceError as exc:
        raise PlanInputError(str(exc), field="upload") from None
    return spec, spec.model_id


def _model_from_path(text: str, *, any_path: bool) -> tuple[engine.ModelSpec, str]:
    from pathlib import Path

    from planner.model_sources import ModelSourceError, model_sources

    try:
        sources = model_sources()
    except ModelSourceError as exc:
        raise PlanInputError(str(exc), field="path") from None
    if any_path:
        try:
            path = Path(text).expanduser().resolve()
        except (ValueError, RuntimeError, OSError) as exc:
            raise PlanInputError(f"{text}: not a usable path ({exc}).") from None
        if not path.exists():
            raise PlanInputError(f"{text}: no such file or directory.", field="path")
    else:
        try:
            path = sources.local_path(text)
        except ModelSourceError as exc:
            raise PlanInputError(str(exc), field="path") from None
    try:
        spec = sources.path_spec(path)
    except ModelSourceError as exc:
        raise PlanInputError(str(exc), field="path") from None
    return spec, spec.model_id


def _model_from_hub(hf_id: str) -> tuple[engine.ModelSpec, str]:
    from planner.hub import HubError, fetch_config, validate_hf_id

    try:
        repo = validate_hf_id(hf_id)
        config, _revision = fetch_config(repo)
    except (ValueError, HubError) as exc:
        raise PlanInputError(str(exc), field="model") from None
    try:
        return engine.model_spec_from_config(
            config_validate(config), model_id=repo
        ), repo
    except engine.SpecError as exc:
        raise PlanInputError(f"{repo} config.json: {exc}", field="model") from None


def gpu_resolve(*, gpu: str) -> engine.GpuSpec:
    """A GPU (or CPU server) from the catalog, by id."""
    gpu = (gpu or "").strip()
    if not gpu:
        raise PlanInputError("Choose a GPU (or a CPU server).", field="gpu")
    try:
        return engine.catalog.get_gpu(gpu)
    except engine.CatalogError as exc:
        raise PlanInputError(str(exc), field="gpu") from None


def plan_compute(
    *,
    data: PlanInput,
    user: AbstractBaseUser | None,
    any_path: bool = False,
    all_measurements: bool = False,
) -> engine.PlanReport:
    """Run the engine for a plan input; every user error becomes a PlanInputError.

    ``any_path`` lets the operator's ``manage.py plan`` read a GGUF anywhere, and
    ``all_measurements`` use every user's measurements; requests from users read
    only the local model folders and their own measurements.
    """
    request = _plan_request(
        data=data, user=user, any_path=any_path, all_measurements=all_measurements
    )
    return _engine_errors(engine.plan, request)


def plan_compute_json(*, data: PlanInput, user: AbstractBaseUser | None) -> str:
    """``report_to_dict(plan_compute(...))`` as compact JSON text, for an answer
    that is only shown: the engine's memoised plan of the very same request
    (the ledger's measurements included)."""
    request = _plan_request(
        data=data, user=user, any_path=False, all_measurements=False
    )
    return _engine_errors(engine.plan_json, request)


def _engine_errors(
    fn: Callable[[engine.PlanRequest], _T], request: engine.PlanRequest
) -> _T:
    """``fn(request)``, the engine's refusals as the user's input errors."""
    try:
        return fn(request)
    except engine.PlanError as exc:
        raise PlanInputError(str(exc)) from None
    except engine.CatalogError as exc:
        raise PlanInputError(str(exc), field="api_price") from None


def _plan_request(
    *,
    data: PlanInput,
    user: AbstractBaseUser | None,
    any_path: bool,
    all_measurements: bool,
) -> engine.PlanRequest:
    """The engine's request for a plan input, with what the ledger knows."""
    spec, _model_id = model_resolve(
        model=data.model,
        config=data.config,
        upload=data.upload,
        path=data.path,
        user=user,
        any_path=any_path,
    )
    try:  # worker:<hostname> is a machine that measures, with a ledger key
        found = measurements.measuring_device_spec(plan_id=data.gpu.strip())
    except measurements.UnknownWorker as exc:
        raise PlanInputError(str(exc), field="gpu") from None
    gpu, device = found or (gpu_resolve(gpu=data.gpu), "")
    _check_gpus_per_server(gpus=data.gpus, gpu=gpu)
    for text in data.formats:
        try:
            engine.parse_format(text)
        except engine.FormatError as exc:
            raise PlanInputError(str(exc), field="formats") from None
    return engine.PlanRequest(
        model=spec,
        gpu=gpu,
        gpus=data.gpus,
        formats=tuple(data.formats),
        context_tokens=data.context_tokens,
        concurrency=data.concurrency,
        engine=data.engine,
        utilization=data.utilization,
        gpu_memory_utilization=data.gpu_memory_utilization,
        kv_cache_dtype=data.kv_cache_dtype,
        prompt_tokens=data.prompt_tokens,
        output_tokens=data.output_tokens,
        api_price_id=data.api_price,
        price_usd_per_hour=data.price_usd_per_hour,
        electricity_usd_per_kwh=data.electricity_usd_per_kwh,
        max_quality_loss_pct=data.max_quality_loss_pct,
        min_tokens_per_s=data.min_tokens_per_s,
        max_ttft_s=data.max_ttft_s,
        **measurements.plan_ledger(
            user=user,
            model_id=spec.model_id,
            gpu=gpu,
            device=device,
            engine_name=data.engine,
            all_measurements=all_measurements,
        ),
    )


def _check_gpus_per_server(*, gpus: int | None, gpu: engine.GpuSpec) -> None:
    """Say which server sizes the planner models, in the words of the form."""
    if gpus is None:
        return
    if gpu.kind != "gpu":
        if gpus != 1:
            raise PlanInputError(
                f"{gpu.name} is planned as one machine: leave “GPUs per server” empty "
                "or set it to 1.",
                field="gpus",
            )
        return
    allowed = TENSOR_PARALLEL_SIZES
    if gpus not in allowed:
        sizes = ", ".join(map(str, allowed[:-1])) + f" or {allowed[-1]}"
        raise PlanInputError(
            f"Serving engines split a model over {sizes} GPUs (tensor parallelism), "
            f"so {gpus} GPUs per server cannot be planned: choose one of those, or "
            "leave it empty for the fewest that fit.",
            field="gpus",
        )


def _saved_model_name(data: PlanInput, spec: engine.ModelSpec) -> tuple[str, str]:
    """(model id, display name) a saved plan keeps: the file's own model for an
    upload or a path, the name a pasted config.json gives, else what was typed."""
    if data.upload or data.path:
        return spec.model_id, spec.name
    if data.model:
        return data.model, data.model
    if data.config:
        named = config_model_name(data.config)
        return named, named
    return "custom", "custom model"


def plans_check_room(*, user: AbstractBaseUser, count: int) -> None:
    """Raise PlanLimitReached unless ``count`` more plans fit the user's limit."""
    from django.conf import settings

    limit = settings.QUANTPLAN_MAX_SAVED_PLANS
    saved = Plan.objects.filter(user=user).count()
    if saved + count > limit:
        raise PlanLimitReached(
            f"You have {saved} saved plans and the limit is {limit}; delete plans you "
            "no longer need (Plans page, or DELETE /api/v1/plans/{id}/) to save more."
        )


def plan_save(
    *,
    user: AbstractBaseUser,
    name: str,
    data: PlanInput,
    report: engine.PlanReport,
    comparison: Comparison | None = None,
) -> Plan:
    """Store a plan so its owner can reopen and compare it."""
    plans_check_room(user=user, count=1)
    request = {k: v for k, v in data.__dict__.items() if k not in ("config", "extra")}
    spec = report.request.model
    request["formats"] = list(data.formats)
    model_id, model_name = _saved_model_name(data, spec)
    return Plan.objects.create(
        user=user,
        name=(name or f"{model_name} on {data.gpu}")[:200],
        model_id=model_id[:200],
        model_config=data.config or {},
        request=request,
        report=report_to_dict(report),
        comparison=comparison,
    )


def plans_save(
    *,
    user: AbstractBaseUser,
    name: str,
    computed: list[tuple[PlanInput, engine.PlanReport]],
) -> Plan | Comparison:
    """Save one plan, or several GPUs planned at once as one comparison."""
    from django.db import transaction

    plans_check_room(user=user, count=len(computed))
    if len(computed) == 1:
        data, report = computed[0]
        return plan_save(user=user, name=name, data=data, report=report)
    first, first_report = computed[0]
    _model_id, model_name = _saved_model_name(first, first_report.request.model)
    gpus = " vs ".join(d.gpu for d, _r in computed)
    with transaction.atomic():
        comparison = Comparison.objects.create(
            user=user, name=(name or f"{model_name} on {gpus}")[:200]
        )
        for data, report in computed:
            plan_save(
                user=user,
                name=f"{comparison.name} · {data.gpu}",
                data=data,
                report=report,
                comparison=comparison,
            )
    return comparison


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise PlanInputError("Give a name (1 to 200 characters).", field="name")
    if len(name) > 200:
        raise PlanInputError(
            f"The name is {len(name)} characters long; shorten it to 200.",
            field="name",
        )
    return name


def plan_rename(*, plan: Plan, name: str) -> Plan:
    """Give a saved plan a new name."""
    plan.name = _clean_name(name)
    plan.save(update_fields=["name"])
    return plan


def plan_delete(*, plan: Plan) -> None:
    """Delete a saved plan (a comparison left with no plan goes with it)."""
    comparison = plan.comparison
    plan.delete()
    if comparison is not None and not comparison.plans.exists():
        comparison.delete()


def comparison_rename(*, comparison: Comparison, name: str) -> Comparison:
    """Give a saved comparison a new name."""
    comparison.name = _clean_name(name)
    comparison.save(update_fields=["name"])
    return comparison


def comparison_delete(*, comparison: Comparison) -> None:
    """Delete a comparison and the plans saved with it."""
    comparison.delete()


def report_to_dict(report: engine.PlanReport) -> dict[str, Any]:
    """The JSON form of an engine report."""
    return report.to_dict()


def plan_input_from_saved(plan: Plan) -> PlanInput:
    """The input a saved plan was made from."""
    request = dict(plan.request)
    request["formats"] = tuple(request.get("formats") or DEFAULT_FORMATS)
    known = set(PlanInput.__dataclass_fields__)
    kwargs = {k: v for k, v in request.items() if k in known}
    if plan.model_config:
        kwargs["config"] = plan.model_config
    return PlanInput(**kwargs)
