"""Jobs you can see into and manage: queue position and estimates, the full log,
every measured field, renaming and deleting jobs and artifacts, storage against the
quota, and jobs compared side by side."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.frontend.test_pages import _finished_job, html_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def _job(user: Any, **fields: Any) -> Any:
    from quantjobs.models import Job

    defaults = {
        "method": "gguf",
        "formats": ["gguf-Q8_0"],
        "source_kind": "sample",
        "source_ref": "smollm2-135m",
        "queue": "cpu",
    }
    return Job.objects.create(user=user, **{**defaults, **fields})


def _worker(queues: list[str]) -> None:
    from quantjobs.models import WorkerHeartbeat

    WorkerHeartbeat.objects.create(hostname=f"w-{'-'.join(queues)}", queues=queues)


def test_a_queued_job_shows_its_position_and_estimates_from_the_jobs_ahead(
    logged_in: Any, user: Any
) -> None:
    from django.contrib.auth.models import User

    now = timezone.now()
    # History: two finished one-format GGUF jobs of 100 s and 140 s → median 120 s.
    for seconds in (100, 140):
        _job(
            user,
            status="SUCCEEDED",
            started_at=now - timedelta(hours=1, seconds=seconds),
            finished_at=now - timedelta(hours=1),
        )
    other = User.objects.create_user("erin", password="x" * 12)
    _job(other, status="RUNNING", started_at=now - timedelta(seconds=20))
    _job(other, status="QUEUED", created_at=now - timedelta(seconds=30))
    mine = _job(user, status="QUEUED", formats=["gguf-Q8_0", "gguf-Q4_K_M"])
    _worker(["cpu"])
    html = html_of(logged_in.get(f"/jobs/{mine.pk}/"))
    position = re.search(r'id="job-position">(.*?)</dd>', html).group(1)
    assert position.startswith("2 · 1 queued ahead, 1 running on 1 worker")
    # ahead: 100 s left of the running job + 120 s of the queued one = 220 s
    start = re.search(r'id="job-est-start">(.*?)</dd>', html, re.S).group(1)
    assert re.search(r"in about 3 min (39|40) s", start) and "estimate" in start
    finish = re.search(r'id="job-est-finish">(.*?)</dd>', html, re.S).group(1)
    assert (
        re.search(r"in about 7 min (39|40) s", finish) and "estimate" in finish
    )  # 220 + 2 × 120
    live = logged_in.get(f"/jobs/{mine.pk}/live/").json()
    assert live["outlook"]["position"] == 2
    assert live["outlook"]["start_in_s"] == pytest.approx(220, abs=2)
    assert live["outlook"]["estimate_s"] == pytest.approx(240)


def test_without_history_the_estimate_says_it_is_unknown(
    logged_in: Any, user: Any
) -> None:
    job = _job(user, status="QUEUED")
    html = html_of(logged_in.get(f"/jobs/{job.pk}/"))
    assert "when a cpu worker joins" in html
    assert "no finished GGUF" in html or "no finished" in html
    assert "in about" not in html


def test_the_whole_log_is_on_the_page_and_downloads(logged_in: Any, user: Any) -> None:
    job = _job(user, status="RUNNING", started_at=timezone.now())
    for i in range(60):
        job.append_log(f"line {i}")
    html = html_of(logged_in.get(f"/jobs/{job.pk}/"))
    assert "line 0" in html and "line 59" in html
    assert "Elapsed" in html and 'id="job-notify"' in html
    response = logged_in.get(f"/jobs/{job.pk}/log.txt")
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode()
    assert text.count("\n") == 60 and "line 0" in text and "line 59" in text
    assert len(logged_in.get(f"/jobs/{job.pk}/live/").json()["log"]) == 60


def test_every_measured_field_is_on_the_job_page(logged_in: Any, user: Any) -> None:
    from quantjobs.models import JobResult

    job = _finished_job(user)
    result = JobResult.objects.filter(job=job).first()
    result.metrics = {**result.metrics, "load_time_s": 1.25, "tokens_evaluated": 4096}
    result.save()
    html = html_of(logged_in.get(f"/jobs/{job.pk}/"))
    block = html.split("Every measured field")[1]
    for key in (
        "load_time_s",
        "tokens_evaluated",
        "kl_divergence",
        "peak_memory_bytes",
    ):
        assert f"<dt>{key}</dt>" in block, key
    assert "<dd>4096</dd>" in block


def test_jobs_rename_and_only_ended_jobs_delete_with_their_files(
    logged_in: Any, user: Any, settings: Any, tmp_path: Any
) -> None:
    from quantjobs.models import Artifact, Job

    settings.QUANTPLAN_ARTIFACT_ROOT = tmp_path
    running = _job(user, status="RUNNING", started_at=timezone.now())
    logged_in.post(f"/jobs/{running.pk}/delete/")
    assert Job.objects.filter(pk=running.pk).exists()
    assert "cancel it first" in html_of(logged_in.get(f"/jobs/{running.pk}/"))
    logged_in.post(f"/jobs/{running.pk}/rename/", {"name": "Q8 of the sample"})
    running.refresh_from_db()
    assert running.name == "Q8 of the sample"
    logged_in.post(f"/jobs/{running.pk}/rename/", {"name": "x" * 201})
    running.refresh_from_db()
    assert running.name == "Q8 of the sample"

    done = _finished_job(user)
    for artifact in done.artifacts.all():
        (tmp_path / artifact.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / artifact.path).write_bytes(b"gguf")
    assert logged_in.post(f"/jobs/{done.pk}/delete/").status_code == 302
    assert not Job.objects.filter(pk=done.pk).exists()
    assert not Artifact.objects.filter(job_id=done.pk).exists()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_artifacts_rename_delete_and_the_storage_meter(
    logged_in: Any, user: Any, settings: Any, tmp_path: Any
) -> None:
    from quantjobs.models import JobResult

    settings.QUANTPLAN_ARTIFACT_ROOT = tmp_path
    settings.QUANTPLAN_MAX_STORAGE_BYTES = 1_000_000_000
    job = _finished_job(user)
    page = html_of(logged_in.get("/artifacts/"))
    assert "Storage: 0.25 GB of your 1.00 GB artifact quota used" in page
    assert 'id="storage-bar" max="100" value="25"' in page
    for path in ("/jobs/", "/jobs/new/"):
        assert "artifact quota used" in html_of(logged_in.get(path)), path
    artifact = job.artifacts.get(format="gguf-Q8_0")
    logged_in.post(f"/artifacts/{artifact.pk}/rename/", {"filename": "../evil"})
    artifact.refresh_from_db()
    assert artifact.filename == "m.gguf-Q8_0.gguf"
    logged_in.post(f"/artifacts/{artifact.pk}/rename/", {"filename": "smol-q8"})
    artifact.refresh_from_db()
    assert artifact.filename == "smol-q8.gguf"
    assert logged_in.post(f"/artifacts/{artifact.pk}/delete/").status_code == 302
    assert not job.artifacts.filter(pk=artifact.pk).exists()
    assert JobResult.objects.filter(job=job, format="gguf-Q8_0").exists()
    assert "0.10 GB of your 1.00 GB" in html_of(logged_in.get("/artifacts/"))


def test_jobs_compare_side_by_side_with_one_chart(logged_in: Any, user: Any) -> None:
    first, second = _finished_job(user), _finished_job(user)
    second.name = "second run"
    second.save()
    html = html_of(logged_in.get(f"/jobs/compare/?job={first.pk}&job={second.pk}"))
    assert "Compare 2 jobs" in html
    table = re.search(
        r'<table class="table numeric results-table job-compare-table">.*?</table>',
        html,
        re.S,
    ).group(0)
    assert table.count("<tr>") == 5  # the head row and 2 formats × 2 jobs
    assert "2. second run" in table
    charts = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(charts) == 2  # wide and phone layouts of one chart
    assert charts[0].count('class="point"') == 4
    assert "1:gguf-Q8_0" in charts[0] and "2:gguf-Q4_K_M" in charts[0]
    assert logged_in.get(f"/jobs/compare/?job={first.pk}").status_code == 302


def test_speed_whose_runs_spread_is_marked_unreliable_on_the_page_and_in_the_api(
    logged_in: Any, user: Any
) -> None:
    from quantjobs.backends.gguf.serving import ServingMeasurement, SpeedSamples
    from quantjobs.models import JobResult

    job = _finished_job(user)
    serving = ServingMeasurement(
        pid=4242,
        peak_memory_bytes=300 * 2**20,
        peak_memory_after_bench_bytes=300 * 2**20,
        context_tokens=512,
        load_time_s=0.4,
        threads=2,
        prompt=SpeedSamples("pp512", 512, (900.0, 905.0, 897.0)),
        generation=SpeedSamples(
            "tg128", 128, (94.8, 112.6, 100.0), runs_steal_share=(0.0, 0.05, 0.0)
        ),
        load_average_before=(1.5, 1.0, 0.5),
        load_average_after=(1.6, 1.0, 0.5),
        system_info="CPU : AVX2 = 1 |",
        cpu_model="AMD EPYC",
    )
    result = JobResult.objects.get(job=job, format="gguf-Q4_K_M")
    result.metrics = {**result.metrics, "serving": serving.to_dict()}
    result.save()

    html = html_of(logged_in.get(f"/jobs/{job.pk}/"))
    tg_cell = html.split('class="speed-tg"')[2].split("</td>")[0]  # the Q4_K_M row
    assert "unreliable: runs spread 18%" in tg_cell
    assert "steal up to 5.0%" in tg_cell
    pp_cell = html.split('class="speed-pp"')[2].split("</td>")[0]
    assert "unreliable" not in pp_cell  # 900-905 tok/s agree

    body = logged_in.get(f"/api/v1/jobs/{job.pk}/").json()
    rows = {r["format"]: r for r in body["results"]}
    speed = rows["gguf-Q4_K_M"]["speed"]
    assert speed["generation"]["spread_pct"] == pytest.approx(17.8)
    assert speed["generation"]["spread_warning"].startswith("tg128 is unreliable")
    assert speed["generation"]["runs_steal_share"] == [0.0, 0.05, 0.0]
    assert speed["prompt"]["spread_warning"] is None
