"""``plan_json``: the memoised JSON form of a plan is the plan's, copied, and
follows the ledger (a new measurement is a new plan)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from planner.engine import GpuSpec, ModelSpec, PlanRequest, plan, plan_json
from planner.engine.calibration import FormatMeasurement
from planner.engine.memo import _plan_json

FORMATS = ("fp16", "awq-4bit-g128", "gguf-Q4_K_M")


def _json(value: object) -> object:
    return json.loads(json.dumps(value))


def plan_dict(request: PlanRequest) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(plan_json(request))
    return loaded


def test_the_memoised_plan_is_the_plans_json_and_each_caller_gets_a_copy(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    request = PlanRequest(model=llama3_8b, gpu=h100, formats=FORMATS)
    expected = _json(plan(request).to_dict())
    hits = _plan_json.cache_info().hits
    first = plan_dict(request)
    assert first == expected
    # What one caller does to its answer never reaches the next one.
    first["results"][0]["warnings"].append("changed by a caller")
    first["model"] = "changed"
    again = plan_dict(PlanRequest(model=llama3_8b, gpu=h100, formats=list(FORMATS)))
    assert again == expected
    assert _plan_json.cache_info().hits == hits + 1  # planned once, answered twice
    assert plan_json(request) is plan_json(request)  # text: nothing to change


def test_a_new_measurement_changes_the_next_memoised_plan(
    llama3_8b: ModelSpec, h100: GpuSpec
) -> None:
    request = PlanRequest(model=llama3_8b, gpu=h100, formats=FORMATS)
    before = plan_dict(request)
    measured = replace(
        request,
        measurements=(
            FormatMeasurement(
                model_id=llama3_8b.model_id,
                format="gguf-Q4_K_M",
                source="your job 7",
                perplexity_increase_pct=1.25,
                artifact_bytes=4_900_000_000,
            ),
        ),
    )
    after = plan_dict(measured)
    assert after == _json(plan(measured).to_dict())
    row = after["results"][2]
    assert row["expected_quality_loss"]["kind"] == "measured"
    assert row["expected_quality_loss"]["perplexity_increase_pct"] == 1.25
    assert row["artifact_bytes"] == 4_900_000_000
    assert before["results"][2]["expected_quality_loss"]["kind"] != "measured"
    assert plan_dict(request) == before  # the older ledger's plan is still its own
