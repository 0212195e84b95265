"""The server-rendered SVG charts, fed with a real engine report."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from frontend import charts
from planner import services

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """llama-3-70b on an A100 80GB, as the plan page computes it."""
    data = services.PlanInput(
        gpu="a100-80gb", model="llama-3-70b", context_tokens=8192, concurrency=8
    )
    return services.report_to_dict(services.plan_compute(data=data, user=None))


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def test_memory_chart_is_well_formed_with_axis_units_and_a_title(report: Any) -> None:
    root = parse(charts.memory_chart(report))
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title") is not None
    assert any("Memory per GPU (GB" in t for t in texts(root))


def test_memory_chart_has_one_stacked_bar_per_format(report: Any) -> None:
    root = parse(charts.memory_chart(report))
    labels = set(texts(root))
    for row in report["results"]:
        assert row["format"] in labels
    weights = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "seg-weights"]
    kv = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "seg-kv"]
    assert len(weights) == len(kv) == len(report["results"])


def test_memory_chart_draws_the_usable_gpu_memory_as_a_line(report: Any) -> None:
    root = parse(charts.memory_chart(report))
    lines = [ln for ln in root.iter(f"{SVG}line") if ln.get("class") == "capacity"]
    assert len(lines) == 1
    budget_gb = report["results"][0]["budget_bytes_per_gpu"] / 1e9
    assert any(f"{budget_gb:.1f} GB usable per GPU" in t for t in texts(root))
    # The line sits at the budget on the same scale as the bars' axis ticks.
    ticks = {
        float(t.text): float(t.get("x"))
        for t in root.iter(f"{SVG}text")
        if t.text and re.fullmatch(r"\d+(\.\d+)?", t.text)
    }
    (v0, x0), (v1, x1) = sorted(ticks.items())[:2]
    expected_x = x0 + (x1 - x0) * (budget_gb - v0) / (v1 - v0)
    assert float(lines[0].get("x1")) == pytest.approx(expected_x, abs=0.5)


def test_memory_chart_segments_add_up_to_the_total_per_gpu(report: Any) -> None:
    root = parse(charts.memory_chart(report))
    fp16 = next(r for r in report["results"] if r["format"] == "fp16")
    tips = [
        "".join(r.itertext())
        for r in root.iter(f"{SVG}rect")
        if "".join(r.itertext()).startswith("fp16:")
    ]
    total = sum(float(re.search(r"([\d.]+) GB", tip).group(1)) for tip in tips)
    assert total == pytest.approx(fp16["total_bytes_per_gpu"] / 1e9, abs=0.2)


def test_quality_cost_chart_fills_the_pareto_points_only(report: Any) -> None:
    root = parse(charts.quality_cost_chart(report))
    points = [p for p in root.iter() if p.get("class", "").startswith("point")]
    assert points
    pareto = set(report["pareto"])
    for point in points:
        name = "".join(point.itertext()).split(":")[0]
        if name in pareto:
            assert "pareto" in point.get("class") and point.get("fill") != "#fff"
        else:
            assert "dominated" in point.get("class") and point.get("fill") == "#fff"
    assert root.find(f"{SVG}polyline") is not None


def test_quality_cost_chart_has_axis_titles_with_units(report: Any) -> None:
    labels = texts(parse(charts.quality_cost_chart(report)))
    assert "Cost per 1M tokens, prompt + output (USD)" in labels
    assert "Quality loss (perplexity +%)" in labels
    assert any(t.startswith("$") for t in labels)
    assert any(t.endswith("%") for t in labels)


def test_quality_cost_chart_rings_the_recommended_format(report: Any) -> None:
    root = parse(charts.quality_cost_chart(report))
    assert (
        len([c for c in root.iter(f"{SVG}circle") if c.get("class") == "recommended"])
        == 1
    )


def test_quality_cost_labels_do_not_overlap(report: Any) -> None:
    root = parse(charts.quality_cost_chart(report))
    boxes = []
    for t in root.iter(f"{SVG}text"):
        name = "".join(t.itertext())
        if not any(name.startswith(r["format"]) for r in report["results"]):
            continue
        x, y, w = float(t.get("x")), float(t.get("y")), len(name) * charts.CHAR_W
        anchor = t.get("text-anchor", "start")
        x0 = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
        boxes.append((x0, y - charts.FONT_PX, x0 + w, y))
    assert len(boxes) >= 5
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            assert not overlap, (a, b)


def test_a_quality_loss_beyond_the_axis_is_drawn_at_the_edge_with_its_value(
    report: Any,
) -> None:
    root = parse(charts.quality_cost_chart(report))
    q2k = next(r for r in report["results"] if r["format"] == "gguf-Q2_K")
    assert q2k["expected_quality_loss"]["perplexity_increase_pct"] > 25
    assert any(t.startswith("gguf-Q2_K (+") for t in texts(root))


@pytest.mark.parametrize("width", [charts.WIDTH, charts.NARROW_WIDTH])
def test_both_layouts_keep_the_axis_title_and_capacity_line(
    report: Any, width: int
) -> None:
    memory = parse(charts.memory_chart(report, width=width))
    assert memory.get("viewBox") == f"0 0 {width} {memory.get('height')}"
    assert "Memory per GPU (GB, 10⁹ bytes)" in texts(memory)
    assert [e for e in memory.iter() if e.get("class") == "capacity"]
    quality = parse(charts.quality_cost_chart(report, width=width))
    assert "Quality loss (perplexity +%)" in texts(quality)


def test_formats_far_worse_than_the_rest_do_not_squash_the_axis(report: Any) -> None:
    root = parse(charts.quality_cost_chart(report))
    percent_ticks = [float(t[:-1]) for t in texts(root) if re.fullmatch(r"[\d.]+%", t)]
    on_scale = [
        r["expected_quality_loss"]["perplexity_increase_pct"]
        for r in report["results"]
        if r["expected_quality_loss"]["perplexity_increase_pct"] < 5
    ]
    assert max(percent_ticks) < 10 < 56  # Q3_K_M (~10.5 %) and Q2_K sit on the edge
    assert max(on_scale) <= max(percent_ticks)
    clipped = [p for p in root.iter() if "clipped" in (p.get("class") or "")]
    assert {"".join(p.itertext()).split(":")[0] for p in clipped} == {
        "gguf-Q2_K",
        "gguf-Q3_K_M",
    }


def test_charts_of_an_empty_report_are_empty() -> None:
    assert charts.memory_chart({"results": []}) == ""
    assert charts.quality_cost_chart({"results": []}) == ""
    assert charts.job_quality_chart([]) == ""


def test_chart_text_is_escaped() -> None:
    row = {
        "format": "<b>&x",
        "gpus": 1,
        "fits": True,
        "weights_bytes_per_gpu": 1e9,
        "kv_cache_bytes_per_gpu": 1e9,
        "overhead_bytes": 1e9,
        "total_bytes_per_gpu": 3e9,
        "budget_bytes_per_gpu": 8e9,
    }
    root = parse(charts.memory_chart({"gpu": "x", "results": [row]}))
    assert "<b>&x" in texts(root)


def test_job_chart_plots_measured_loss_against_size_with_projections() -> None:
    results = [
        {
            "format": "gguf-Q8_0",
            "artifact_bytes": 145e6,
            "perplexity_change_pct": 0.4,
            "projected_artifact_bytes": 144e6,
        },
        {
            "format": "gguf-Q4_K_M",
            "artifact_bytes": 105e6,
            "perplexity_change_pct": 6.1,
            "projected_artifact_bytes": 101e6,
        },
        {"format": "selftest", "artifact_bytes": 80, "perplexity_change_pct": None},
    ]
    root = parse(charts.job_quality_chart(results))
    labels = texts(root)
    assert "File size (MB, 10⁶ bytes)" in labels
    assert "Quality loss (perplexity +%)" in labels
    assert {"gguf-Q8_0", "gguf-Q4_K_M"} <= set(labels)
    assert "selftest" not in labels
    projected = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "projected"]
    assert len(projected) == 2


def test_the_memory_chart_states_the_total_beside_the_per_gpu_bar() -> None:
    from frontend import charts
    from planner import engine

    report = engine.plan(
        engine.PlanRequest(
            model=engine.get_model("llama-3-70b").spec,
            gpu=engine.get_gpu("a100-80gb"),
            formats=["fp16", "awq-4bit-g128"],
        )
    ).to_dict()
    svg = str(charts.memory_chart(report))
    fp16 = next(r for r in report["results"] if r["format"] == "fp16")
    assert fp16["gpus"] > 1
    per_gpu = fp16["total_bytes_per_gpu"] / 1e9
    assert f"{per_gpu:.1f} GB x {fp16['gpus']} GPUs = " in svg
    assert "Per GPU · total" in svg
