"""Where plans read measurements from, without the planner importing who measures.

The planner only declares what it needs: the measurements of one model (quality,
size, memory), the speed calibrations of one device, the fingerprints of the
machines that measured, and the answers of accuracy-aware searches run from a
saved plan (its measured recommendations). The app that measures (``quantjobs``) registers its
selectors here in its ``AppConfig.ready()``; with none registered, plans are
purely estimated and say so. Each function is a read (a selector): keyword-only
arguments, plain engine dataclasses out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.contrib.auth.models import AbstractBaseUser

from planner.engine.calibration import (
    FormatMeasurement,
    SpeedCalibration,
    ledger_engine,
)
from planner.engine.catalog import GpuSpec
from planner.engine.device import (
    WorkerFingerprint,
    device_from_fingerprint,
    device_key,
)

WORKER_PREFIX = "worker:"


class MeasurementSource(Protocol):
    """Measurements of one model: the user's own, or everyone's for ``user=None``."""

    def __call__(
        self, *, user: AbstractBaseUser | None, model_id: str
    ) -> Sequence[FormatMeasurement]: ...


class CalibrationSource(Protocol):
    """Speed calibrations fitted for one device and engine."""

    def __call__(self, *, device: str, engine: str) -> Sequence[SpeedCalibration]: ...


@dataclass(frozen=True)
class MeasuringDevice:
    """A machine that measures (a worker), as plans can name it."""

    hostname: str
    fingerprint: dict[str, Any]

    @property
    def plan_id(self) -> str:
        """What a plan's GPU field holds to plan for this machine."""
        return f"{WORKER_PREFIX}{self.hostname}"


DeviceSource = Callable[[], Sequence[MeasuringDevice]]


@dataclass(frozen=True)
class SearchFinding:
    """A finished accuracy-aware search run from a plan: its measured answer."""

    job_id: str
    answer: str | None  # the format within the bar; None: no candidate met it
    closest: str | None  # with no answer, the candidate that came closest
    closest_value: float | None
    label: str  # the bar, e.g. "perplexity change ≤ 3%"
    model: str  # the model measured
    stand_in_for: str | None  # the plan's model, when the search measured another
    text: str  # one sentence, starting "measured: "
    finished_at: str  # ISO 8601
    source: str = "measured"  # as a plan row's ``sources`` say it

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)


class SearchFindingSource(Protocol):
    """The finished searches run from one plan, newest first (``user=None``: any
    user's, for the operator's CLI)."""

    def __call__(
        self, *, user: AbstractBaseUser | None, plan_id: Any
    ) -> Sequence[SearchFinding]: ...


_measurements: list[MeasurementSource] = []
_calibrations: list[CalibrationSource] = []
_devices: list[DeviceSource] = []
_search_findings: list[SearchFindingSource] = []


def register_measurement_source(fn: MeasurementSource) -> MeasurementSource:
    """Let plans read this app's measurements of a model (idempotent)."""
    if fn not in _measurements:
        _measurements.append(fn)
    return fn


def register_calibration_source(fn: CalibrationSource) -> CalibrationSource:
    """Let plans read this app's speed calibrations of a device (idempotent)."""
    if fn not in _calibrations:
        _calibrations.append(fn)
    return fn


def register_device_source(fn: DeviceSource) -> DeviceSource:
    """Let plans target the machines this app measures on (idempotent)."""
    if fn not in _devices:
        _devices.append(fn)
    return fn


def register_search_finding_source(fn: SearchFindingSource) -> SearchFindingSource:
    """Let plans show this app's finished searches run from them (idempotent)."""
    if fn not in _search_findings:
        _search_findings.append(fn)
    return fn


def measurements_for_model(
    *, user: AbstractBaseUser | None, model_id: str
) -> list[FormatMeasurement]:
    """Every registered source's measurements of ``model_id``, oldest first."""
    if not model_id:
        return []
    return [m for fn in _measurements for m in fn(user=user, model_id=model_id)]


def calibrations_for_device(*, device: str, engine: str) -> list[SpeedCalibration]:
    """Every registered source's speed calibrations of ``device`` and ``engine``."""
    if not device:
        return []
    return [c for fn in _calibrations for c in fn(device=device, engine=engine)]


def search_findings_for_plan(
    *, user: AbstractBaseUser | None, plan_id: Any
) -> list[SearchFinding]:
    """Every registered source's finished searches run from plan ``plan_id``:
    the plan's measured recommendations (none registered: none)."""
    return [f for fn in _search_findings for f in fn(user=user, plan_id=plan_id)]


def measuring_devices() -> list[MeasuringDevice]:
    """The machines plans can target by ``worker:<hostname>``."""
    return [d for fn in _devices for d in fn()]


def measuring_device(*, plan_id: str) -> MeasuringDevice | None:
    """The machine a plan's ``worker:<hostname>`` names, or None."""
    if not plan_id.startswith(WORKER_PREFIX):
        return None
    return next((d for d in measuring_devices() if d.plan_id == plan_id), None)


class UnknownWorker(ValueError):
    """A plan names ``worker:<hostname>`` and no such worker has announced itself."""


def measuring_device_spec(*, plan_id: str) -> tuple[GpuSpec, str] | None:
    """The device a ``worker:<hostname>`` plan is for and the ledger's key for it;
    None for any other name (a catalog or custom GPU, never calibrated)."""
    if not plan_id.startswith(WORKER_PREFIX):
        return None
    found = measuring_device(plan_id=plan_id)
    if found is None:
        known = ", ".join(d.plan_id for d in measuring_devices())
        raise UnknownWorker(
            f"No worker named {plan_id.removeprefix(WORKER_PREFIX)!r} has announced "
            f"itself; choose one of: {known or 'none yet (start a worker)'}, or a "
            "catalog GPU."
        )
    spec = device_from_fingerprint(WorkerFingerprint.from_dict(found.fingerprint))
    return dataclasses.replace(spec, id=found.plan_id), device_key(found.fingerprint)


def plan_ledger(
    *,
    user: AbstractBaseUser | None,
    model_id: str,
    gpu: GpuSpec,
    device: str,
    engine_name: str,
    all_measurements: bool,
) -> dict[str, Any]:
    """What the ledger knows for a plan, as ``PlanRequest`` fields: this model's
    measurements (the user's own, or everyone's for the operator's CLI) and the
    device's speed calibrations."""
    if all_measurements:
        measured = measurements_for_model(user=None, model_id=model_id)
    elif user is not None and user.is_authenticated:
        measured = measurements_for_model(user=user, model_id=model_id)
    else:
        measured = []
    return {
        "measurements": tuple(measured),
        "calibrations": tuple(
            calibrations_for_device(
                device=device, engine=ledger_engine(engine_name, gpu.kind)
            )
        ),
        "device_key": device,
    }
