"""Plan reports as files to take away: JSON (the whole report) and CSV (one row per
GPU and format). Presentation of report dicts only; no rule of the planner lives here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

# Columns of the CSV, in the order people read them: what, where, fits, cost, quality.
CSV_COLUMNS = (
    "model",
    "gpu",
    "gpu_name",
    "format",
    "format_label",
    "recommended",
    "fits",
    "gpus",
    "weights_bytes_per_gpu",
    "kv_cache_bytes_per_gpu",
    "overhead_bytes",
    "total_bytes_per_gpu",
    "budget_bytes_per_gpu",
    "ttft_s",
    "decode_tokens_per_s",
    "total_decode_tokens_per_s",
    "cost_usd_per_month",
    "cost_usd_per_million_tokens",
    "api_cost_usd_per_million_tokens",
    "break_even_tokens_per_month",
    "perplexity_increase_pct",
    "quality_kind",
    # Where the numbers come from (results[].sources): estimated, calibrated from
    # n runs, or measured.
    "speed_source",
    "quality_source",
    "memory_source",
)


def plans_to_json(*, reports: Sequence[dict[str, Any]], share_url: str = "") -> str:
    """The reports as one JSON document, with the link that reproduces them."""
    body: dict[str, Any] = {"plans": list(reports)}
    if share_url:
        body["share_url"] = share_url
    return json.dumps(body, indent=2, sort_keys=False)


def plans_to_csv(*, reports: Sequence[dict[str, Any]]) -> str:
    """One CSV row per GPU and format; bytes and USD unscaled, empty when unknown."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for report in reports:
        rec = report.get("recommendation") or {}
        rec_format = rec.get("format") if isinstance(rec, dict) else None
        for row in report.get("results") or []:
            quality = row.get("expected_quality_loss") or {}
            sources = row.get("sources") or {}
            values = {
                key: row.get(key)
                for key in CSV_COLUMNS
                if key not in ("model", "recommended", "perplexity_increase_pct")
            }
            values.update(
                model=report.get("model"),
                gpu=row.get("gpu") or report.get("gpu"),
                recommended=row.get("format") == rec_format,
                perplexity_increase_pct=quality.get("perplexity_increase_pct"),
                quality_kind=quality.get("kind"),
                speed_source=sources.get("decode_tokens_per_s"),
                quality_source=sources.get("quality"),
                memory_source=sources.get("total_bytes_per_gpu"),
            )
            writer.writerow({k: "" if v is None else v for k, v in values.items()})
    return out.getvalue()
