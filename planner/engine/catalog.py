"""The catalog: models, GPUs, API prices and published file sizes (JSON in ``data/``).

# Kept whole: one reader per catalog file with one validation style; the GPU
schema (prices, purchase, power) is most of it and reads best beside its loader.

Files are read through ``importlib.resources`` once per process (functools.cache);
their schema is ``data/SCHEMA.md``. ``gpu_spec_from_dict`` also validates a GPU
that a user describes.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from .spec import ModelSpec, SpecError, model_spec_from_config

GPU_KINDS = ("gpu", "apple", "cpu")
# A CPU plan is priced and counted by the server, an Apple one by the machine.
DEVICE_UNITS = {"gpu": "GPU", "cpu": "server", "apple": "machine"}
CPU_FEATURES = frozenset({"avx2", "avx512"})
GPU_VENDORS = ("nvidia", "amd", "apple", "intel", "cpu")
TFLOPS_DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4")
MAX_MEMORY_BYTES = 1 << 50  # 1 PiB: nothing a single device has
MAX_BANDWIDTH_BYTES_PER_S = 1e15
MAX_TFLOPS = 1e6
MAX_USD_PER_HOUR = 10_000.0
DEFAULT_DEPRECIATION_MONTHS = 36  # three years, the horizon GPU TCO analyses use
MAX_DEPRECIATION_MONTHS = 240


class CatalogError(ValueError):
    """An unknown catalog id (with close matches) or an invalid catalog/user entry."""


@dataclass(frozen=True)
class GpuPrice:
    """One provider's hourly price for one GPU."""

    provider: str
    usd_per_hour: float
    date: str = ""
    source: str = ""
    note: str = ""


@dataclass(frozen=True)
class GpuPurchase:
    """What owning one device costs up front (the device's share of its server)."""

    usd: float
    date: str = ""
    source: str = ""
    note: str = ""
    # Straight-line depreciation period: the device's price is spread over it.
    depreciation_months: int = 36
    # True when the price is a floor (a base configuration, or CPUs without the
    # rest of the server): owning costs at least this much.
    lower_bound: bool = False
    # True when the figure was recalled rather than read from its source page.
    unverified: bool = False


@dataclass(frozen=True)
class GpuSpec:
    """An accelerator (or CPU/Apple machine): memory, bandwidth, TFLOPS and prices."""

    id: str
    name: str
    vendor: str
    kind: str
    memory_bytes: int
    memory_bandwidth_bytes_per_s: float
    tflops: Mapping[str, float | None] = field(default_factory=dict, hash=False)
    tdp_w: float | None = None
    interconnect: str | None = None
    # Peer-to-peer bandwidth per device, both directions together (datasheet).
    interconnect_bytes_per_s: float | None = None
    prices: tuple[GpuPrice, ...] = ()
    source: str = ""
    purchase: GpuPurchase | None = None
    # Sold only as a cloud instance (AWS's A10G): there is nothing to buy.
    cloud_only: bool = False
    # Vector extensions of a CPU that change how llama.cpp lays out weights
    # ("avx512": it also repacks Q2_K); empty means an AVX2 CPU.
    cpu_features: tuple[str, ...] = ()

    @property
    def unit(self) -> str:
        """What one of this device is called in a sentence: GPU, server or machine."""
        return DEVICE_UNITS.get(self.kind, "GPU")

    def tflops_for(self, dtype: str) -> float | None:
        """Dense TFLOPS for ``dtype``, or None when the device lacks it."""
        value = self.tflops.get(dtype)
        return float(value) if value else None

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        return {
            "id": self.id,
            "name": self.name,
            "vendor": self.vendor,
            "kind": self.kind,
            "memory_bytes": self.memory_bytes,
            "memory_bandwidth_bytes_per_s": self.memory_bandwidth_bytes_per_s,
            "tflops": dict(self.tflops),
            "tdp_w": self.tdp_w,
            "interconnect": self.interconnect,
            "interconnect_bytes_per_s": self.interconnect_bytes_per_s,
            "cpu_features": list(self.cpu_features),
            "cloud_only": self.cloud_only,
            "prices": [p.__dict__.copy() for p in self.prices],
            "purchase": self.purchase.__dict__.copy() if self.purchase else None,
            "source": self.source,
        }


@dataclass(frozen=True)
class CatalogModel:
    """A catalog model entry with its parsed ``ModelSpec``."""

    id: str
    name: str
    hf_id: str
    family: str
    tags: tuple[str, ...]
    source: str
    spec: ModelSpec
    date: str = ""  # when the config values were read from ``source``
    config: Mapping[str, Any] = field(hash=False, repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON: the catalog entry plus its parameter counts."""
        from .tensors import parameter_breakdown

        params = parameter_breakdown(self.spec)
        return {
            "id": self.id,
            "name": self.name,
            "hf_id": self.hf_id,
            "family": self.family,
            "tags": list(self.tags),
            "source": self.source,
            "date": self.date,
            "config": dict(self.config),
            "parameters": params.total,
            "active_parameters": params.active_per_token,
        }


@dataclass(frozen=True)
class ApiPrice:
    """A hosted API's price per million input and output tokens."""

    id: str
    provider: str
    model: str
    usd_per_million_input_tokens: float
    usd_per_million_output_tokens: float
    date: str = ""
    source: str = ""
    comparable_to: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        out: dict[str, object] = dict(self.__dict__)
        out["comparable_to"] = list(self.comparable_to)
        return out


@dataclass(frozen=True)
class PublishedSize:
    """The real size of a published artifact, to check projections against."""

    model_id: str
    format: str
    bytes: int
    file: str
    source: str

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        return dict(self.__dict__)


def _number(
    d: Mapping[str, Any],
    key: str,
    *,
    minimum: float,
    maximum: float,
    where: str,
    allow_zero: bool = False,
) -> float:
    value = d.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
    ):
        raise CatalogError(f"{where}{key}: must be a number, got {value!r}")
    if value < minimum or (value == 0 and not allow_zero) or value > maximum:
        raise CatalogError(
            f"{where}{key}: {value} is out of range "
            f"({'0' if allow_zero else '>0'} to {maximum:g})"
        )
    return float(value)


def _text(
    d: Mapping[str, Any],
    key: str,
    default: str = "",
    *,
    where: str = "",
    limit: int = 500,
) -> str:
    value = d.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > limit:
        raise CatalogError(f"{where}{key}: must be a short string")
    return value


def gpu_spec_from_dict(data: Mapping[str, Any]) -> GpuSpec:
    """Validate a GPU description (catalog entry or user input) into a ``GpuSpec``."""
    if not isinstance(data, Mapping):
        raise CatalogError(
            "gpu: expected an object with memory_bytes, "
            "memory_bandwidth_bytes_per_s and tflops"
        )
    gid = _text(data, "id", "custom-gpu", where="gpu.") or "custom-gpu"
    where = f"gpu {gid}: "
    kind = _text(data, "kind", "gpu", where=where)
    if kind not in GPU_KINDS:
        raise CatalogError(f"{where}kind: must be one of {', '.join(GPU_KINDS)}")
    vendor = _text(data, "vendor", "cpu" if kind == "cpu" else "nvidia", where=where)
    memory = _number(
        data, "memory_bytes", minimum=0, maximum=MAX_MEMORY_BYTES, where=where
    )
    bandwidth = _number(
        data,
        "memory_bandwidth_bytes_per_s",
        minimum=0,
        maximum=MAX_BANDWIDTH_BYTES_PER_S,
        where=where,
    )
    raw_tflops = data.get("tflops") or {}
    if not isinstance(raw_tflops, Mapping):
        raise CatalogError(
            f'{where}tflops: expected an object such as {{"fp16": 312, "bf16": 312}}'
        )
    tflops: dict[str, float | None] = {}
    for key, value in raw_tflops.items():
        if value is None:
            tflops[str(key)] = None
            continue
        tflops[str(key)] = _number(
            raw_tflops,
            key,
            minimum=0,
            maximum=MAX_TFLOPS,
            where=f"{where}tflops.",
            allow_zero=True,
        )
    if not any(tflops.get(k) for k in ("fp16", "bf16", "fp32")):
        raise CatalogError(f"{where}tflops: give at least one of fp16, bf16 or fp32")
    raw_prices = data.get("prices") or []
    if not isinstance(raw_prices, list):
        raise CatalogError(
            f"{where}prices: expected a list of "
            '{"provider": ..., "usd_per_hour": ...}'
        )
    prices = []
    for i, p in enumerate(raw_prices):
        if not isinstance(p, Mapping):
            raise CatalogError(f"{where}prices[{i}]: expected an object")
        prices.append(
            GpuPrice(
                provider=_text(p, "provider", "unknown", where=f"{where}prices[{i}]."),
                usd_per_hour=_number(
                    p,
                    "usd_per_hour",
                    minimum=0,
                    maximum=MAX_USD_PER_HOUR,
                    where=f"{where}prices[{i}].",
                    allow_zero=True,
                ),
                date=_text(p, "date", where=where),
                source=_text(p, "source", where=where),
                note=_text(p, "note", limit=1000, where=where),
            )
        )
    raw_features = data.get("cpu_features") or []
    if not isinstance(raw_features, list) or not set(raw_features) <= CPU_FEATURES:
        raise CatalogError(
            f"{where}cpu_features: expected a list drawn from "
            f"{', '.join(sorted(CPU_FEATURES))}"
        )
    tdp = data.get("tdp_w")
    link = None
    if data.get("interconnect_bytes_per_s") is not None:
        link = _number(
            data,
            "interconnect_bytes_per_s",
            minimum=0,
            maximum=MAX_BANDWIDTH_BYTES_PER_S,
            where=where,
        )
    purchase = None
    raw_purchase = data.get("purchase")
    if raw_purchase is not None:
        if not isinstance(raw_purchase, Mapping):
            raise CatalogError(f"{where}purchase: expected an object with usd")
        purchase = GpuPurchase(
            usd=_number(
                raw_purchase,
                "usd",
                minimum=0,
                maximum=1e8,
                where=f"{where}purchase.",
            ),
            date=_text(raw_purchase, "date", where=where),
            source=_text(raw_purchase, "source", where=where),
            note=_text(raw_purchase, "note", limit=1000, where=where),
            depreciation_months=int(
                _number(
                    raw_purchase,
                    "depreciation_months",
                    minimum=1,
                    maximum=MAX_DEPRECIATION_MONTHS,
                    where=f"{where}purchase.",
                )
                if raw_purchase.get("depreciation_months") is not None
                else DEFAULT_DEPRECIATION_MONTHS
            ),
            lower_bound=raw_purchase.get("lower_bound") is True,
            unverified=raw_purchase.get("unverified") is True,
        )
    return GpuSpec(
        id=gid,
        name=_text(data, "name", gid, where=where) or gid,
        vendor=vendor,
        kind=kind,
        memory_bytes=int(memory),
        memory_bandwidth_bytes_per_s=bandwidth,
        tflops=tflops,
        tdp_w=float(tdp)
        if isinstance(tdp, int | float) and not isinstance(tdp, bool)
        else None,
        interconnect=_text(data, "interconnect", where=where) or None,
        interconnect_bytes_per_s=link,
        purchase=purchase,
        prices=tuple(prices),
        source=_text(data, "source", where=where),
        cpu_features=tuple(sorted(set(raw_features))),
        cloud_only=data.get("cloud_only") is True,
    )


def _read_json(name: str) -> Any:
    path = resources.files("planner.engine").joinpath("data", name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"catalog file data/{name} is missing") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"catalog file data/{name} is not valid JSON: {exc}"
        ) from exc


def _entries(name: str) -> list[Mapping[str, Any]]:
    data = _read_json(name)
    if not isinstance(data, list) or not all(isinstance(e, Mapping) for e in data):
        raise CatalogError(f"catalog file data/{name} must hold a list of objects")
    return list(data)


@cache
def _models() -> tuple[CatalogModel, ...]:
    out = []
    for e in _entries("models.json"):
        mid = str(e.get("id", ""))
        try:
            spec = model_spec_from_config(
                e.get("config") or {}, model_id=mid, name=str(e.get("name", mid))
            )
        except SpecError as exc:
            raise CatalogError(f"models.json {mid}: {exc}") from exc
        out.append(
            CatalogModel(
                id=mid,
                name=str(e.get("name", mid)),
                hf_id=str(e.get("hf_id", "")),
                family=str(e.get("family", spec.model_type)),
                tags=tuple(str(t) for t in e.get("tags") or ()),
                source=str(e.get("source", "")),
                spec=spec,
                date=str(e.get("date", "")),
                config=dict(e.get("config") or {}),
            )
        )
    return tuple(out)


@cache
def _gpus() -> tuple[GpuSpec, ...]:
    return tuple(gpu_spec_from_dict(e) for e in _entries("gpus.json"))


@cache
def _api_prices() -> tuple[ApiPrice, ...]:
    out = []
    for e in _entries("api_prices.json"):
        aid = str(e.get("id", ""))
        where = f"api_prices.json {aid}: "
        out.append(
            ApiPrice(
                id=aid,
                provider=str(e.get("provider", "")),
                model=str(e.get("model", "")),
                usd_per_million_input_tokens=_number(
                    e,
                    "usd_per_million_input_tokens",
                    minimum=0,
                    maximum=1e6,
                    where=where,
                    allow_zero=True,
                ),
                usd_per_million_output_tokens=_number(
                    e,
                    "usd_per_million_output_tokens",
                    minimum=0,
                    maximum=1e6,
                    where=where,
                    allow_zero=True,
                ),
                date=str(e.get("date", "")),
                source=str(e.get("source", "")),
                comparable_to=tuple(str(c) for c in e.get("comparable_to") or ()),
            )
        )
    return tuple(out)


@cache
def _published_sizes() -> tuple[PublishedSize, ...]:
    return tuple(
        PublishedSize(
            model_id=str(e.get("model_id", "")),
            format=str(e.get("format", "")),
            bytes=int(e.get("bytes", 0)),
            file=str(e.get("file", "")),
            source=str(e.get("source", "")),
        )
        for e in _entries("published_sizes.json")
    )


def load_models() -> list[CatalogModel]:
    """All catalog models, each with its parsed ``ModelSpec``."""
    return list(_models())


def load_gpus() -> list[GpuSpec]:
    """All catalog GPUs (and CPU/Apple machines)."""
    return list(_gpus())


def load_api_prices() -> list[ApiPrice]:
    """All hosted-API prices of the catalog."""
    return list(_api_prices())


def load_published_sizes() -> list[PublishedSize]:
    """Real artifact sizes of real models, to measure projection error against."""
    return list(_published_sizes())


def _lookup(kind: str, wanted: str, ids: list[str]) -> CatalogError:
    close = difflib.get_close_matches(str(wanted).lower(), ids, n=4, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return CatalogError(f"unknown {kind} {str(wanted)[:80]!r}{hint}")


def get_model(model_id: str) -> CatalogModel:
    """The catalog model with this id, or CatalogError listing close matches."""
    for m in _models():
        if m.id == model_id:
            return m
    raise _lookup("model", model_id, [m.id for m in _models()])


def get_gpu(gpu_id: str) -> GpuSpec:
    """The catalog GPU with this id, or CatalogError listing close matches."""
    for g in _gpus():
        if g.id == gpu_id:
            return g
    raise _lookup("GPU", gpu_id, [g.id for g in _gpus()])


def get_api_price(price_id: str) -> ApiPrice:
    """The API price entry with this id, or CatalogError listing close matches."""
    for p in _api_prices():
        if p.id == price_id:
            return p
    raise _lookup("API price", price_id, [p.id for p in _api_prices()])
