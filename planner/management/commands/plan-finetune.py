"""``manage.py plan-finetune``: memory, time and cost of fine-tuning a model."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from planner import capacity_services, services
from planner.engine.finetune import ALL_LINEAR, DEFAULT_TARGETS, METHODS, OPTIMIZERS


class Command(BaseCommand):
    help = "Project fine-tuning memory per GPU, time per epoch and cost (--json)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", required=True, help="Catalog id or HF id.")
        parser.add_argument("--gpu", required=True, help="Catalog GPU id.")
        parser.add_argument("--gpus", type=int, default=1)
        parser.add_argument("--method", choices=METHODS, default="lora")
        parser.add_argument("--seq-len", type=int, default=2048)
        parser.add_argument("--micro-batch", type=int, default=1)
        parser.add_argument("--lora-rank", type=int, default=16)
        parser.add_argument(
            "--target",
            dest="targets",
            action="append",
            choices=ALL_LINEAR,
            default=None,
            help=f"LoRA target module, repeatable (default {' '.join(DEFAULT_TARGETS)}).",
        )
        parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
        parser.add_argument(
            "--no-gradient-checkpointing", dest="checkpointing", action="store_false"
        )
        parser.add_argument("--dataset-tokens", type=int, default=10_000_000)
        parser.add_argument("--epochs", type=float, default=1.0)
        parser.add_argument("--price-usd-per-hour", type=float, default=None)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        data = capacity_services.FinetuneInput(
            model=options["model"],
            gpu=options["gpu"],
            gpus=options["gpus"],
            method=options["method"],
            seq_len=options["seq_len"],
            micro_batch=options["micro_batch"],
            lora_rank=options["lora_rank"],
            target_modules=tuple(options["targets"] or DEFAULT_TARGETS),
            optimizer=options["optimizer"],
            gradient_checkpointing=options["checkpointing"],
            dataset_tokens=options["dataset_tokens"],
            epochs=options["epochs"],
            price_usd_per_hour=options["price_usd_per_hour"],
        )
        try:
            est = capacity_services.finetune_compute(data=data, user=None)
        except services.PlanInputError as exc:
            raise CommandError(str(exc)) from None
        body = est.to_dict()
        if options["json"]:
            self.stdout.write(json.dumps(body, indent=2))
            return
        for key in (
            "weights_bytes",
            "gradients_bytes",
            "optimizer_bytes",
            "activations_bytes",
            "loss_bytes",
            "overhead_bytes",
            "total_bytes",
        ):
            self.stdout.write(f"{key[:-6]:<14}{body[key] / 1e9:>10.2f} GB")
        self.stdout.write(f"fits: {'yes' if est.fits else 'no: ' + est.reasons[0]}")
        self.stdout.write(f"time per epoch: {est.time_per_epoch_s / 3600:.2f} h")
        if est.usd_per_epoch is not None:
            self.stdout.write(f"cost per epoch: {est.usd_per_epoch:.2f} USD")
