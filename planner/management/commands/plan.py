"""``manage.py plan``: project memory, speed and cost of a model on a GPU, per format.

With a traffic (``--requests-per-s`` or ``--tokens-per-month``) it searches GPU
types (``--gpu`` repeated, or the whole catalog), counts and formats for the
cheapest deployment that meets the latency targets. ``--plan ID`` shows a saved
plan as it was computed, with the measured answers of the searches run from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.http import Http404

from planner import capacity_services, selectors, services
from planner.measurements import WORKER_PREFIX
from planner.services import DEFAULT_FORMATS, PlanInput


class Command(BaseCommand):
    help = "Plan a model on a GPU: one JSON object per format with --json."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--model",
            default=None,
            help="Catalog id, HF id, config.json path, or a .gguf file (the first "
            "part of a split one) or model folder, read from its own metadata.",
        )
        parser.add_argument(
            "--gpu",
            dest="gpu",
            action="append",
            default=None,
            help="Catalog GPU id (see `catalog gpus`), or worker:<hostname> to plan "
            "for a worker's own machine (calibrated by its measurements); repeat it "
            "to compare GPU types in a capacity search (default there: every "
            "catalog GPU).",
        )
        parser.add_argument(
            "--gpus", type=int, default=None, help="GPUs (default: fewest that fit)."
        )
        parser.add_argument("--format", dest="formats", action="append", default=None)
        parser.add_argument(
            "--context", type=int, default=8192, help="Context length in tokens."
        )
        parser.add_argument(
            "--concurrency", type=int, default=1, help="Concurrent sequences."
        )
        parser.add_argument("--engine", choices=["vllm", "llama.cpp"], default="vllm")
        parser.add_argument("--kv-cache-dtype", default="f16")
        parser.add_argument("--utilization", type=float, default=0.5)
        parser.add_argument(
            "--api-price", default=None, help="API price id to compare with."
        )
        parser.add_argument("--price-usd-per-hour", type=float, default=None)
        parser.add_argument(
            "--electricity-usd-per-kwh",
            type=float,
            default=None,
            help="Electricity price of owning the GPUs: a plan's owned cost, and a "
            "capacity search's with --provider owned; default 0.12.",
        )
        parser.add_argument(
            "--plan",
            dest="plan_id",
            default=None,
            metavar="ID",
            help="Show a saved plan (any user's) as it was computed, with the "
            "measured recommendations of the searches run from it.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print JSON: a list of formats; with --plan, the saved plan's object "
            "as the API answers it.",
        )
        traffic = parser.add_argument_group(
            "capacity search (any of these switches it on)"
        )
        traffic.add_argument("--requests-per-s", type=float, default=None)
        traffic.add_argument("--tokens-per-month", type=float, default=None)
        traffic.add_argument("--prompt-tokens", type=int, default=None)
        traffic.add_argument("--output-tokens", type=int, default=None)
        traffic.add_argument(
            "--hours-per-day",
            type=float,
            default=24.0,
            help="Hours a day the traffic arrives (the deployment is paid 24).",
        )
        traffic.add_argument("--max-ttft-s", type=float, default=None)
        traffic.add_argument("--max-tpot-ms", type=float, default=None)
        traffic.add_argument("--min-tokens-per-s", type=float, default=None)
        traffic.add_argument("--max-quality-loss-pct", type=float, default=None)
        traffic.add_argument(
            "--provider",
            default=None,
            help="Price from this provider only; 'owned' prices a purchase "
            "(depreciation and power) instead of renting.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["plan_id"] is not None:
            self._saved(options)
            return
        if not options["model"]:
            raise CommandError(
                "Give --model (and --gpu) to compute a plan, or --plan ID to show a "
                "saved one."
            )
        gpus = options["gpu"] or []
        if (
            options["requests_per_s"] is not None
            or options["tokens_per_month"] is not None
        ):
            self._capacity(options, gpus)
            return
        if len(gpus) != 1:
            raise CommandError(
                "Give one --gpu for a plan, or a traffic (--requests-per-s or "
                "--tokens-per-month) to compare several GPU types."
            )
        options["gpu"] = gpus[0]
        for key in ("gpus", "context", "concurrency"):
            value = options[key]
            if value is not None and value < 1:
                raise CommandError(f"--{key} must be at least 1.")
        model, config, local = options["model"], None, ""
        path = Path(model)
        if path.suffix == ".json" and path.is_file():
            try:
                model, config = path.stem, services.config_parse_text(path.read_text())
            except services.PlanInputError as exc:
                raise CommandError(str(exc)) from None
        elif path.suffix.lower() == ".gguf" or path.is_dir():
            model, local = "", model
        data = PlanInput(
            model=model,
            config=config,
            path=local,
            gpu=options["gpu"],
            gpus=options["gpus"],
            formats=tuple(options["formats"] or DEFAULT_FORMATS),
            context_tokens=options["context"],
            concurrency=options["concurrency"],
            engine=options["engine"],
            kv_cache_dtype=options["kv_cache_dtype"],
            utilization=options["utilization"],
            api_price=options["api_price"],
            price_usd_per_hour=options["price_usd_per_hour"],
            electricity_usd_per_kwh=options["electricity_usd_per_kwh"],
        )
        try:
            # The operator's CLI sees every user's measurements (labelled by job).
            report = services.plan_compute(
                data=data, user=None, any_path=True, all_measurements=True
            )
        except services.PlanInputError as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError:
            # Planning needs no database; only the measurements live in one. A
            # fresh checkout that has not run `migrate` still gets its plan.
            if str(data.gpu).startswith(WORKER_PREFIX):
                raise CommandError(
                    f"--gpu {data.gpu} needs the measurements database, which is not "
                    "set up here: run `python manage.py migrate` (or `make run` once)."
                ) from None
            self.stderr.write(
                "Note: no measurements were read (the database is not set up: run "
                "`python manage.py migrate`); every number below is estimated."
            )
            try:
                report = services.plan_compute(data=data, user=None, any_path=True)
            except services.PlanInputError as exc:
                raise CommandError(str(exc)) from None
        body = services.report_to_dict(report)
        if options["json"]:
            self.stdout.write(json.dumps(body["results"], indent=2))
            return
        self._print_table(body)

    def _saved(self, options: dict[str, Any]) -> None:
        """A saved plan's report and the measured answers of searches run from it."""
        flags = {"model": "--model", "gpu": "--gpu", "formats": "--format"}
        given = [flag for key, flag in flags.items() if options[key]]
        if given:
            raise CommandError(
                f"--plan shows a saved plan as it was computed; drop {', '.join(given)}."
            )
        try:
            plan = selectors.plan_get(plan_id=options["plan_id"])
            found = selectors.plan_measured_recommendations(plan=plan, user=None)
        except Http404:
            raise CommandError(
                f"No saved plan has id {options['plan_id']!r}."
            ) from None
        except DatabaseError:
            raise CommandError(
                "--plan reads saved plans from the database, which is not set up "
                "here: run `python manage.py migrate` (or `make run` once)."
            ) from None
        if options["json"]:
            body = {
                "id": str(plan.pk),
                "name": plan.name,
                "model_id": plan.model_id,
                "request": plan.request,
                "report": plan.report,
                "measured_recommendations": [f.to_dict() for f in found],
                "created_at": plan.created_at.isoformat(),
            }
            self.stdout.write(json.dumps(body, indent=2))
            return
        report = plan.report or {}
        self.stdout.write(
            f"Plan {plan.name!r} ({plan.pk}), saved {plan.created_at:%Y-%m-%d %H:%M}: "
            f"{report.get('model', plan.model_id)} on {report.get('gpu', '?')}\n"
        )
        self._print_table(report)
        if found:
            self.stdout.write(
                "\nMeasured recommendations (searches run from this plan):"
            )
            for f in found:
                stand_in = (
                    f"; measured on {f.model}, a stand-in for {f.stand_in_for}"
                    if f.stand_in_for
                    else ""
                )
                self.stdout.write(f"  - {f.text} (job {f.job_id}{stand_in})")

    def _capacity(self, options: dict[str, Any], gpus: list[str]) -> None:
        model, config = options["model"], None
        path = Path(model)
        try:
            if path.suffix == ".json" and path.is_file():
                model, config = path.stem, services.config_parse_text(path.read_text())
            data = capacity_services.CapacityInput(
                model=model,
                config=config,
                gpus=tuple(gpus),
                gpu_counts=(options["gpus"],) if options["gpus"] else (1, 2, 4, 8),
                formats=tuple(options["formats"]) if options["formats"] else None,
                requests_per_s=options["requests_per_s"],
                tokens_per_month=options["tokens_per_month"],
                prompt_tokens=options["prompt_tokens"] or 1000,
                output_tokens=options["output_tokens"] or 300,
                hours_per_day=options["hours_per_day"],
                max_ttft_s=options["max_ttft_s"],
                max_tpot_ms=options["max_tpot_ms"],
                min_tokens_per_s=options["min_tokens_per_s"],
                max_quality_loss_pct=options["max_quality_loss_pct"],
                api_price=options["api_price"],
                price_usd_per_hour=options["price_usd_per_hour"],
                provider=options["provider"],
                kv_cache_dtype=options["kv_cache_dtype"],
                electricity_usd_per_kwh=options["electricity_usd_per_kwh"],
            )
            report = capacity_services.capacity_compute(data=data, user=None)
        except services.PlanInputError as exc:
            raise CommandError(str(exc)) from None
        body = capacity_services.capacity_report_body(report=report)
        if options["json"]:
            self.stdout.write(json.dumps(body, indent=2))
            return
        rec = body["recommendation"]
        if rec:
            self.stdout.write(f"Recommended: {rec['label']} x {rec['replicas']}")
            for reason in body["reasons"]:
                self.stdout.write(f"  - {reason}")
        else:
            self.stdout.write(f"No recommendation: {body['why_none']}")
        if body["verdict"]:
            self.stdout.write(f"\n{body['verdict']['text']}")
        self.stdout.write(
            f"\n{'deployment':<58}{'in flight':>10}{'replicas':>9}{'$/month':>10}{'$/1M tok':>9}"
        )
        for row in body["candidates"][:15]:
            self.stdout.write(
                f"{row['label'][:57]:<58}{row['concurrency']:>10}{row['replicas']:>9}"
                f"{row['usd_per_month'] or 0:>10.0f}{row['usd_per_million_tokens'] or 0:>9.3f}"
            )

    def _print_table(self, body: dict[str, Any]) -> None:
        header = f"{'format':<16}{'weights GB':>11}{'KV GB':>8}{'total/GPU GB':>13}{'GPUs':>5}{'fits':>6}{'tok/s':>9}{'$/month':>10}{'$/1M tok':>10}{'owned $/mo':>11}{'owned $/1M':>11}"
        self.stdout.write(header)
        rows = body.get("results") or []  # a saved plan's stored report may lack it
        for row in rows:
            self.stdout.write(
                f"{row['format']:<16}{row['weights_bytes'] / 1e9:>11.2f}"
                f"{row['kv_cache_bytes'] / 1e9:>8.2f}{row['total_bytes_per_gpu'] / 1e9:>13.2f}"
                f"{row['gpus_needed'] or '-':>5}{'yes' if row['fits'] else 'no':>6}"
                f"{row['decode_tokens_per_s'] or 0:>9.1f}{row['cost_usd_per_month'] or 0:>10.0f}"
                f"{row['cost_usd_per_million_tokens'] or 0:>10.2f}"
                f"{_money(row.get('owned_cost_usd_per_month'), 0):>11}"
                f"{_money(row.get('owned_cost_usd_per_million_tokens'), 2):>11}"
            )
        prices = {
            (r.get("price_source", ""), r.get("owned_price_source", "")) for r in rows
        }
        for rented, owned in sorted(prices):
            self.stdout.write(f"\nPrice: {rented or '?'}")
            # A plan saved before owned costs were reported has no owned source.
            if owned:
                self.stdout.write(f"Owning instead: {owned.removeprefix('owned: ')}")
        self.stdout.write("\nWhere the numbers come from:")
        for row in rows:
            sources = row.get("sources") or {}
            self.stdout.write(
                f"  {row['format']}: tok/s {sources.get('decode_tokens_per_s', '?')}; "
                f"prompt tok/s {sources.get('prompt_tokens_per_s', '?')}; "
                f"quality {sources.get('quality', '?')}; "
                f"size {sources.get('artifact_bytes', '?')}; "
                f"memory {sources.get('total_bytes_per_gpu', '?')}"
            )
        rec = body.get("recommendation") or {}
        if rec.get("format"):
            self.stdout.write(f"\nRecommended: {rec['format']}")
            for reason in rec.get("reasons", []):
                self.stdout.write(f"  - {reason}")


def _money(value: Any, digits: int) -> str:
    """A USD figure for the table, or '-' when it is unknown (nothing to price)."""
    return "-" if value is None else f"{value:.{digits}f}"
