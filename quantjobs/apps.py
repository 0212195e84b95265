from __future__ import annotations

from django.apps import AppConfig


class QuantjobsConfig(AppConfig):
    """Jobs that quantize and benchmark models on Celery workers, and their artifacts."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "quantjobs"

    def ready(self) -> None:
        """Offer the planner what it reads without importing us: the ledger and
        the answers of searches run from a plan (planner/measurements.py),
        uploads and local model files (planner/model_sources.py)."""
        from planner.measurements import (
            register_calibration_source,
            register_device_source,
            register_measurement_source,
            register_search_finding_source,
        )
        from quantjobs.calibration import speed_calibrations
        from quantjobs.plan_sources import plan_sources_register
        from quantjobs.search import search_findings_for_plan
        from quantjobs.selectors import format_measurements_for_model, measuring_devices

        register_measurement_source(format_measurements_for_model)
        register_calibration_source(speed_calibrations)
        register_device_source(measuring_devices)
        register_search_finding_source(search_findings_for_plan)
        plan_sources_register()
