"""``manage.py samples``: the bundled sample models with size and sha256."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "List the bundled sample models (size and sha256)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        from quantjobs.samples import SampleError, list_samples

        try:
            samples = list_samples()
        except SampleError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    [{**dataclasses.asdict(s), "path": str(s.path)} for s in samples],
                    indent=2,
                )
            )
            return
        for s in samples:
            self.stdout.write(
                f"{s.id}\n  {s.name}\n  {s.path}\n  {s.size_bytes:,} bytes  sha256 {s.sha256}"
            )
