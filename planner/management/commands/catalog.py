"""``manage.py catalog models|gpus|formats|api-prices [--json]``."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from planner.catalog_views import KINDS, catalog_list


class Command(BaseCommand):
    help = "List a catalog: models, gpus, formats or api-prices."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        entries = catalog_list(options["kind"])
        if options["json"]:
            self.stdout.write(json.dumps(entries, indent=2))
            return
        for entry in entries:
            label = entry.get("name") or entry.get("label") or entry.get("model") or ""
            self.stdout.write(f"{entry['id']:<32} {label}")
