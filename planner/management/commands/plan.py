"""``manage.py plan``: project memory, speed and cost of a model on a GPU, per format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from planner import services
from planner.services import DEFAULT_FORMATS, PlanInput


class Command(BaseCommand):
    help = "Plan a model on a GPU: one JSON object per format with --json."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--model",
            required=True,
            help="Catalog id, HF id, config.json path, or a .gguf file (the first "
            "part of a split one) or model folder, read from its own metadata.",
        )
        parser.add_argument(
            "--gpu", required=True, help="Catalog GPU id (see `catalog gpus`)."
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
        parser.add_argument("--json", action="store_true", help="Print JSON (a list).")

    def handle(self, *args: Any, **options: Any) -> None:
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

    def _print_table(self, body: dict[str, Any]) -> None:
        header = f"{'format':<16}{'weights GB':>11}{'KV GB':>8}{'total/GPU GB':>13}{'GPUs':>5}{'fits':>6}{'tok/s':>9}{'$/month':>10}{'$/1M tok':>10}"
        self.stdout.write(header)
        for row in body["results"]:
            self.stdout.write(
                f"{row['format']:<16}{row['weights_bytes'] / 1e9:>11.2f}"
                f"{row['kv_cache_bytes'] / 1e9:>8.2f}{row['total_bytes_per_gpu'] / 1e9:>13.2f}"
                f"{row['gpus_needed'] or '-':>5}{'yes' if row['fits'] else 'no':>6}"
                f"{row['decode_tokens_per_s'] or 0:>9.1f}{row['cost_usd_per_month'] or 0:>10.0f}"
                f"{row['cost_usd_per_million_tokens'] or 0:>10.2f}"
            )
        rec = body.get("recommendation") or {}
        if rec.get("format"):
            self.stdout.write(f"\nRecommended: {rec['format']}")
            for reason in rec.get("reasons", []):
                self.stdout.write(f"  - {reason}")
