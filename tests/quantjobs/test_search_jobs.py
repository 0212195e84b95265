"""Accuracy-aware search jobs: created with a bar, run by the one runner over a real
child process (self-test backend), trail and answer on the job, the API, the page
and the plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

pytestmark = pytest.mark.django_db

QA = "\n".join(
    json.dumps({"prompt": f"Question {i}?", "answer": f"answer {i}"}) for i in range(3)
).encode()
TEXT_ONLY = json.dumps({"text": "Plain prose for perplexity. " * 200}).encode()


@pytest.fixture
def logged_in(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def _post(api: Any, **fields: Any) -> Any:
    body = {"method": "gguf", "source_kind": "sample", **fields}
    fmt = (
        "multipart" if "eval_file" in fields or "calibration_file" in fields else "json"
    )
    return api.post("/api/v1/jobs/", body, format=fmt)


def test_a_search_orders_its_candidates_smallest_first_by_projected_size(
    api: Any, redis_url: str
) -> None:
    response = _post(
        api,
        formats=["gguf-Q8_0", "gguf-Q4_K_M", "gguf-Q6_K"],
        search_metric="perplexity_change_pct",
        search_max=3,
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["formats"] == ["gguf-Q4_K_M", "gguf-Q6_K", "gguf-Q8_0"]
    search = body["search"]
    sizes = [c["projected_bytes"] for c in search["candidates"]]
    assert sizes == sorted(sizes) and all(s > 0 for s in sizes)
    assert search["label"] == "perplexity change ≤ 3%"
    assert "projected file size" in search["size_basis"]
    assert search["trail"] == [] and search["answer"] is None


def test_a_search_without_formats_tries_the_methods_ladder(
    api: Any, redis_url: str
) -> None:
    response = _post(api, search_metric="kl_divergence", search_max=0.05)
    assert response.status_code == 201, response.content
    formats = response.json()["formats"]
    assert formats[0] == "gguf-Q2_K" and formats[-1] == "gguf-Q8_0"
    assert len(formats) == 6


def test_a_plain_job_still_needs_formats(api: Any, redis_url: str) -> None:
    response = _post(api)
    assert response.status_code == 400
    assert "at least one format" in response.json()["formats"][0]


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"search_metric": "perplexity_change_pct", "search_max": -2}, "search_max",
         "cannot be negative"),
        ({"search_metric": "perplexity_change_pct", "search_max": 500}, "search_max",
         "every format would pass"),
        ({"search_metric": "kl_divergence", "search_max": 40}, "search_max",
         "between 0 and 5 nats"),
        ({"search_max": 3}, "search_metric", "Say what the search bar measures"),
        ({"search_metric": "kl_divergence"}, "search_max", "largest loss"),
    ],
)  # fmt: skip
def test_a_bad_bar_is_refused_on_its_field(
    api: Any, redis_url: str, fields: dict[str, Any], field: str, fragment: str
) -> None:
    from quantjobs.models import Job

    response = _post(api, formats=["gguf-Q4_K_M"], **fields)
    assert response.status_code == 400, response.content
    assert fragment in response.json()[field][0]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "eval_file",
    [None, SimpleUploadedFile("prose.jsonl", TEXT_ONLY)],
    ids=["no eval file", "text lines only"],
)
def test_an_exact_match_bar_without_prompt_answer_pairs_is_refused(
    api: Any, redis_url: str, eval_file: Any
) -> None:
    from quantjobs.models import Job

    fields: dict[str, Any] = {
        "formats": ["gguf-Q4_K_M"],
        "search_metric": "exact_match_drop_points",
        "search_max": 5,
    }
    if eval_file is not None:
        fields["eval_file"] = eval_file
    response = _post(api, **fields)
    assert response.status_code == 400, response.content
    assert "needs a prompt/answer set" in response.json()["eval_file"][0]
    assert not Job.objects.exists()


def test_an_exact_match_bar_with_prompt_answer_pairs_is_accepted(
    api: Any, redis_url: str
) -> None:
    response = _post(
        api,
        formats="gguf-Q4_K_M",
        search_metric="exact_match_drop_points",
        search_max=5,
        eval_file=SimpleUploadedFile("qa.jsonl", QA),
    )
    assert response.status_code == 201, response.content
    assert response.json()["search"]["metric"] == "exact_match_drop_points"


@pytest.mark.parametrize(
    ("field", "name", "data", "fragment"),
    [
        ("calibration_file", "c.txt", b"\x00\x01\x02" * 1000, "binary file"),
        ("calibration_file", "c.txt", b"", "is empty"),
        ("eval_file", "qa.jsonl", json.dumps({"prompt": "2+2="}).encode(),
         "Line 1: has no 'answer'"),
    ],
)  # fmt: skip
def test_bad_text_files_get_a_clear_error_on_their_field(
    api: Any, redis_url: str, field: str, name: str, data: bytes, fragment: str
) -> None:
    response = _post(
        api,
        formats="gguf-Q4_K_M",
        search_metric="perplexity_change_pct",
        search_max=3,
        **{field: SimpleUploadedFile(name, data)},
    )
    assert response.status_code == 400, response.content
    assert fragment in response.json()[field][0]


# -- the runner, over a real child process -------------------------------------


def _search_job(user: Any, formats: list[str], bar: float, losses: dict[str, float],
                plan: Any = None, metric: str = "kl_divergence") -> Any:  # fmt: skip
    from planner.engine.search import search_bar
    from quantjobs.models import Job
    from quantjobs.search import new_search

    job = Job.objects.create(
        user=user,
        method=Job.Method.SELFTEST,
        formats=formats,
        source_kind=Job.SourceKind.SAMPLE,
        source_ref="smollm2-135m-instruct-q4_1",
        options={
            "steps": 1,
            "step_s": 0,
            "metrics_by_format": {f: {metric: v} for f, v in losses.items()},
        },
        search=new_search(
            search_bar(metric, bar),
            [{"format": f, "projected_bytes": None} for f in formats],
            "the order given",
        ),
        plan=plan,
    )
    assert job.start(worker="test@here")
    return job


def test_the_runner_stops_at_the_first_candidate_within_the_bar(
    user: Any, clean_media: Path
) -> None:
    from quantjobs import runner
    from quantjobs.models import Artifact, Job

    formats = ["selftest-a", "selftest-b", "selftest-c"]
    job = _search_job(
        user, formats, 0.05, {"selftest-a": 0.3, "selftest-b": 0.04, "selftest-c": 0.0}
    )
    runner.execute(job)
    job.refresh_from_db()

    assert job.status == Job.Status.SUCCEEDED, job.error
    trail = job.search["trail"]
    assert [(t["format"], t["passed"]) for t in trail] == [
        ("selftest-a", False),
        ("selftest-b", True),
    ]
    assert trail[0]["reason"] == "failed: KL divergence 0.3 nats > 0.05 nats"
    assert job.search["answer"] == "selftest-b" and job.search["finished"]
    assert "Tried 2 of 3 candidates" in job.search["summary"]
    # selftest-c was never made; only the answer's file is kept.
    assert sorted(job.results.values_list("format", flat=True)) == formats[:2]
    assert list(Artifact.objects.filter(job=job).values_list("format", flat=True)) == [
        "selftest-b"
    ]
    assert "stopping early; 1 larger candidate not tried" in job.log


def test_no_candidate_within_the_bar_ends_succeeded_naming_the_closest(
    user: Any, clean_media: Path, api: Any
) -> None:
    from quantjobs import runner
    from quantjobs.models import Artifact, Job

    job = _search_job(
        user, ["selftest-a", "selftest-b"], 0.01, {"selftest-a": 0.3, "selftest-b": 0.2}
    )
    runner.execute(job)
    job.refresh_from_db()

    assert job.status == Job.Status.SUCCEEDED and job.error == ""
    assert job.search["answer"] is None
    assert job.search["closest"] == "selftest-b" and job.search["closest_value"] == 0.2
    assert job.search["summary"] == (
        "No format meets KL divergence ≤ 0.01 nats: the closest of the 2 tried is "
        "selftest-b at 0.2 nats."
    )
    assert [a.format for a in Artifact.objects.filter(job=job)] == ["selftest-b"]
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["search"]["summary"] == job.search["summary"]
    rows = {r["format"]: r for r in body["results"]}
    assert rows["selftest-a"]["artifact_id"] is None  # measured, file removed
    assert rows["selftest-a"]["kl_divergence"] == 0.3


def test_a_candidate_that_fails_ends_the_search_partial_with_its_trail(
    user: Any, clean_media: Path
) -> None:
    from quantjobs import runner
    from quantjobs.models import Job

    job = _search_job(user, ["selftest-a", "selftest-b"], 0.01, {"selftest-a": 0.3})
    Job.objects.filter(pk=job.pk).update(
        options={**job.options, "fail_format": "selftest-b"}
    )
    job.refresh_from_db()
    runner.execute(job)
    job.refresh_from_db()

    assert job.status == Job.Status.PARTIAL
    assert [t["format"] for t in job.search["trail"]] == ["selftest-a"]
    assert job.search["summary"].startswith("The search stopped: selftest-b failed")
    assert not job.search["finished"]


def _searched_plan(user: Any) -> tuple[Any, Any]:
    """A plan with a finished search run from it (the runner, over a real child):
    selftest-b is the first of three candidates within a KLD of 0.05 nats."""
    from planner.models import Plan
    from quantjobs import runner

    plan = Plan.objects.create(
        user=user, name="p", model_id="llama-3-8b",
        report={"model": "llama-3-8b", "gpu": "l4", "results": []},
    )  # fmt: skip
    job = _search_job(
        user,
        ["selftest-a", "selftest-b", "selftest-c"],
        0.05,
        {"selftest-a": 0.3, "selftest-b": 0.01},
        plan=plan,
    )
    runner.execute(job)
    return plan, job


def test_the_job_page_shows_the_trail_and_the_plan_page_the_answer(
    user: Any, clean_media: Path, logged_in: Any
) -> None:
    plan, job = _searched_plan(user)

    html = logged_in.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="job-search"' in html and 'data-answer="selftest-b"' in html
    assert 'data-format="selftest-a" data-verdict="failed"' in html
    assert 'data-format="selftest-b" data-verdict="passed"' in html
    assert 'data-format="selftest-c" data-verdict="not tried"' in html
    assert "KL divergence 0.3 nats &gt; 0.05 nats" in html

    plan_html = logged_in.get(f"/plans/{plan.pk}/").content.decode()
    assert 'id="plan-search-findings"' in plan_html
    assert (
        "measured: selftest-b is the smallest format within KL divergence ≤ 0.05 nats"
        in plan_html
    )


def test_the_plan_api_and_cli_show_a_finished_searchs_answer_as_measured(
    user: Any, other_user: Any, clean_media: Path, api: Any
) -> None:
    from io import StringIO

    from django.core.management import call_command

    from planner.models import Plan
    from quantjobs import runner

    plan, job = _searched_plan(user)
    bare = Plan.objects.create(user=user, name="bare", model_id="llama-3-8b")
    # Another user's search from the same plan id is not this user's answer.
    theirs = _search_job(
        other_user, ["selftest-a"], 0.5, {"selftest-a": 0.3}, plan=plan
    )
    runner.execute(theirs)
    text = (
        "measured: selftest-b is the smallest format within KL divergence ≤ 0.05 nats"
    )

    body = api.get(f"/api/v1/plans/{plan.pk}/").json()
    found = body["measured_recommendations"]
    assert [(f["job_id"], f["answer"], f["source"]) for f in found] == [
        (str(job.pk), "selftest-b", "measured")
    ]
    assert found[0]["text"].startswith(text)
    assert found[0]["label"] == "KL divergence ≤ 0.05 nats"
    assert api.get(f"/api/v1/plans/{bare.pk}/").json()["measured_recommendations"] == []

    out = StringIO()
    call_command("plan", "--plan", str(plan.pk), "--json", stdout=out)
    cli = json.loads(out.getvalue())
    # The operator's CLI sees every user's searches run from the plan, newest first.
    assert {(f["job_id"], f["answer"]) for f in cli["measured_recommendations"]} == {
        (str(job.pk), "selftest-b"),
        (str(theirs.pk), "selftest-a"),
    }
    assert cli["id"] == str(plan.pk) and cli["report"]["gpu"] == "l4"
    out = StringIO()
    call_command("plan", "--plan", str(plan.pk), stdout=out)
    assert "Measured recommendations" in out.getvalue()
    assert f"{text} on " in out.getvalue() and f"(job {job.pk}" in out.getvalue()

    out = StringIO()
    call_command("plan", "--plan", str(bare.pk), "--json", stdout=out)
    assert json.loads(out.getvalue())["measured_recommendations"] == []
    out = StringIO()
    call_command("plan", "--plan", str(bare.pk), stdout=out)
    assert "Plan 'bare'" in out.getvalue()
    assert "Measured" not in out.getvalue() and "measured:" not in out.getvalue()


def test_the_plan_cli_names_a_missing_plan_and_refuses_mixed_arguments(
    user: Any,
) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from planner.models import Plan

    with pytest.raises(CommandError, match="No saved plan has id 'nope'"):
        call_command("plan", "--plan", "nope")
    plan = Plan.objects.create(user=user, name="p", model_id="llama-3-8b")
    with pytest.raises(CommandError, match="drop --model"):
        call_command("plan", "--plan", str(plan.pk), "--model", "llama-3-8b")
    with pytest.raises(CommandError, match="--plan ID"):
        call_command("plan", "--gpu", "l4")


def test_a_search_from_a_plan_tries_the_cheapest_on_the_plans_gpus_first(
    api: Any, user: Any, redis_url: str
) -> None:
    from planner.models import Plan

    report = {
        "gpu": "l4",
        "results": [
            {"format": "gguf-Q8_0", "cost_usd_per_hour": 0.8, "fits": True},
            {"format": "gguf-Q4_K_M", "cost_usd_per_hour": 0.8, "fits": True},
            {"format": "gguf-Q6_K", "cost_usd_per_hour": 1.6, "fits": True},
            {"format": "gguf-Q2_K", "cost_usd_per_hour": None, "fits": False},
        ],
    }
    plan = Plan.objects.create(user=user, name="p", model_id="x", report=report)
    response = _post(
        api,
        formats=["gguf-Q2_K", "gguf-Q6_K", "gguf-Q8_0", "gguf-Q4_K_M"],
        search_metric="kl_divergence",
        search_max=0.05,
        plan=str(plan.pk),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    # Same price: the smaller first; a format that does not fit goes last.
    assert body["formats"] == ["gguf-Q4_K_M", "gguf-Q8_0", "gguf-Q6_K", "gguf-Q2_K"]
    assert body["search"]["size_basis"].startswith("cost per hour on l4")


def test_the_job_form_refuses_a_negative_bar_on_its_field(
    logged_in: Any, redis_url: str
) -> None:
    from quantjobs.models import Job

    response = logged_in.post(
        "/jobs/new/",
        {
            "method": "gguf",
            "formats": "",
            "source_kind": "sample",
            "search_metric": "perplexity_change_pct",
            "search_max": "-1",
        },
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "cannot be negative" in errors["search_max"][0]
    assert not Job.objects.exists()


def test_the_job_form_starts_a_search_with_the_default_ladder(
    logged_in: Any, redis_url: str
) -> None:
    from quantjobs.models import Job

    response = logged_in.post(
        "/jobs/new/",
        {
            "method": "gguf",
            "formats": "",
            "source_kind": "sample",
            "search_metric": "kl_divergence",
            "search_max": "0.05",
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    job = Job.objects.get()
    assert job.search["label"] == "KL divergence ≤ 0.05 nats"
    assert job.formats[0] == "gguf-Q2_K" and len(job.formats) == 6


def test_an_exact_match_search_judges_the_drop_in_points(
    user: Any, clean_media: Path
) -> None:
    from quantjobs import runner
    from quantjobs.models import Job

    job = _search_job(
        user,
        ["selftest-a", "selftest-b"],
        5,
        {"selftest-a": 12.5, "selftest-b": 0.0},
        metric="exact_match_drop_points",
    )
    runner.execute(job)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert [t["reason"] for t in job.search["trail"]] == [
        "failed: exact-match drop 12.5 points > 5 points",
        "passed: exact-match drop 0 points ≤ 5 points",
    ]
    assert job.search["answer"] == "selftest-b"


def test_the_job_form_and_the_api_offer_the_engines_search_metrics_alike() -> None:
    from frontend.forms import JobForm
    from planner.engine.search import METRICS
    from quantjobs.api.serializers import JobCreateInput

    form_field = JobForm().fields["search_metric"]
    api_field = JobCreateInput().fields["search_metric"]
    offered = [value for value, _ in form_field.choices if value]
    assert offered == list(api_field.choices) == list(METRICS)
    # Each says its unit and the cap search_bar holds it to.
    assert api_field.choices["kl_divergence"] == "KL divergence (nats, at most 5)"
    assert dict(form_field.choices)["exact_match_drop_points"] == (
        "Smallest format within an exact-match drop (points, at most 100; needs a "
        "prompt/answer .jsonl)"
    )
    assert form_field.help_text == api_field.help_text.removeprefix(
        "Makes the job a search. "
    )
