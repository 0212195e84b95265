"""Jobs, their per-format results and the artifacts they produce.

The ``Job`` row is the truth about a job: the page, the API and the CLI read it,
and the worker writes it. Celery only carries the job's id.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Concat, Right
from django.utils import timezone

LOG_MAX_CHARS = 64_000


class Job(models.Model):
    """One quantize-and-benchmark run of one source into one or more formats."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Running"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        # Some formats succeeded (their artifacts stay, counted in the quota), then
        # one failed: ``format_errors`` says which, and why.
        PARTIAL = "PARTIAL", "Partly succeeded"
        FAILED = "FAILED", "Failed"
        CANCELLED = "CANCELLED", "Cancelled"
        TIMED_OUT = "TIMED_OUT", "Timed out"

    TERMINAL_STATUSES = frozenset(
        {
            Status.SUCCEEDED,
            Status.PARTIAL,
            Status.FAILED,
            Status.CANCELLED,
            Status.TIMED_OUT,
        }
    )
    # Statuses whose published artifacts are kept; every other end removes them.
    KEEPS_ARTIFACTS = frozenset({Status.SUCCEEDED, Status.PARTIAL})
    ACTIVE_STATUSES = frozenset({Status.QUEUED, Status.RUNNING})

    class Method(models.TextChoices):
        GGUF = "gguf", "GGUF (llama.cpp)"
        AWQ = "awq", "AWQ (autoawq)"
        GPTQ = "gptq", "GPTQ"
        RTN = "rtn", "Round-to-nearest baseline"
        SELFTEST = "selftest", "Worker self-test"

    class SourceKind(models.TextChoices):
        SAMPLE = "sample", "Bundled sample"
        LOCAL = "local", "Local path on the worker"
        UPLOAD = "upload", "Uploaded file"
        HF = "hf", "Hugging Face id"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs"
    )
    name = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=16, choices=Method.choices)
    formats = models.JSONField(default=list)
    source_kind = models.CharField(max_length=16, choices=SourceKind.choices)
    source_ref = models.CharField(max_length=1024)
    source_revision = models.CharField(max_length=64, blank=True)
    model_id = models.CharField(
        max_length=200, blank=True, help_text="Planner catalog id used for projections."
    )
    model_spec = models.JSONField(
        default=dict,
        blank=True,
        help_text="The source model's shape (planner ModelSpec), for projections.",
    )
    eval_text_path = models.CharField(max_length=1024, blank=True)
    eval_text_name = models.CharField(max_length=255, blank=True)
    options = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=8, default="cpu")
    plan = models.ForeignKey(
        "planner.Plan",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )

    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    progress = models.FloatField(default=0.0)
    stage = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    log = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=2)
    cancel_requested = models.BooleanField(default=False)
    interrupt_requested = models.BooleanField(
        default=False, help_text="Its worker is shutting down: stop and requeue."
    )
    worker = models.CharField(max_length=255, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    format_errors = models.JSONField(
        default=dict, blank=True, help_text="Why a format failed, by format."
    )
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its message was last sent to the broker."
    )
    sends = models.PositiveSmallIntegerField(
        default=0, help_text="Messages sent for it (the first, then resends)."
    )
    search = models.JSONField(
        default=dict,
        blank=True,
        help_text="An accuracy-aware search: its bar, candidates, trail and answer "
        "(quantjobs.search); empty for a plain job.",
    )

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "status"])]

    def __str__(self) -> str:
        return f"{self.method} {','.join(self.formats)} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        """Whether the job has reached a status it never leaves."""
        return self.status in self.TERMINAL_STATUSES

    @property
    def duration_s(self) -> float | None:
        """Seconds between start and finish (or now, while it runs)."""
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()

    @property
    def log_lines(self) -> list[str]:
        """The log as a list of lines."""
        return [line for line in self.log.splitlines() if line]

    def start(self, *, worker: str) -> bool:
        """QUEUED → RUNNING for this worker; False if another claimed it first."""
        now = timezone.now()
        claimed = Job.objects.filter(
            pk=self.pk, status=Job.Status.QUEUED, cancel_requested=False
        ).update(
            status=Job.Status.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=worker,
            attempts=F("attempts") + 1,
            stage="Starting",
            interrupt_requested=False,
        )
        self.refresh_from_db()
        return claimed == 1

    def requeue(self, *, stage: str) -> bool:
        """RUNNING → QUEUED for another attempt; False if it ended meanwhile."""
        requeued = Job.objects.filter(pk=self.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.QUEUED,
            stage=stage[:200],
            progress=0.0,
            interrupt_requested=False,
            celery_task_id="",
        )
        self.refresh_from_db()
        return requeued == 1

    def finish(
        self,
        status: str,
        error: str = "",
        *,
        format_errors: dict[str, str] | None = None,
    ) -> bool:
        """Move a queued or running job to a terminal status; False if already ended.

        SUCCEEDED and PARTIAL only come from RUNNING: a job that never ran has
        nothing to show.
        """
        assert status in self.TERMINAL_STATUSES, status
        fields: dict[str, Any] = {
            "status": status,
            "error": error[:4000],
            "finished_at": timezone.now(),
        }
        if format_errors is not None:
            fields["format_errors"] = {
                str(k): str(v)[:2000] for k, v in format_errors.items()
            }
        if status in self.KEEPS_ARTIFACTS:
            fields["progress"] = 1.0
            fields["stage"] = "Done"
        allowed = (
            [Job.Status.RUNNING]
            if status in self.KEEPS_ARTIFACTS
            else list(self.ACTIVE_STATUSES)
        )
        updated = Job.objects.filter(pk=self.pk, status__in=allowed).update(**fields)
        self.refresh_from_db()
        return updated == 1

    def mark_sent(self, *, task_id: str) -> None:
        """Record that a message for this queued job reached the broker."""
        Job.objects.filter(pk=self.pk).update(
            celery_task_id=task_id[:64],
            enqueued_at=timezone.now(),
            sends=F("sends") + 1,
        )

    @property
    def format_outcomes(self) -> list[dict[str, str]]:
        """Each requested format's outcome: succeeded, failed (with why) or not run."""
        done = {r.format for r in self.results.all()}
        outcomes = []
        for fmt in self.formats:
            if fmt in done and self.status in self.KEEPS_ARTIFACTS:
                outcomes.append({"format": fmt, "status": "succeeded", "error": ""})
            elif fmt in (self.format_errors or {}):
                outcomes.append(
                    {
                        "format": fmt,
                        "status": "failed",
                        "error": self.format_errors[fmt],
                    }
                )
            elif self.is_terminal:
                outcomes.append({"format": fmt, "status": "not run", "error": ""})
            else:
                outcomes.append({"format": fmt, "status": "pending", "error": ""})
        return outcomes

    def append_log(self, line: str) -> None:
        """Append one line to the log, keeping its most recent part."""
        stamp = timezone.now().strftime("%H:%M:%S")
        text = f"{stamp} {line.rstrip()}\n"
        Job.objects.filter(pk=self.pk).update(
            log=Right(Concat(F("log"), Value(text)), LOG_MAX_CHARS)
        )


class Artifact(models.Model):
    """A file a job produced, checked and moved into place; downloadable by its owner."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="artifacts"
    )
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="artifacts")
    format = models.CharField(max_length=64)
    filename = models.CharField(max_length=255)
    path = models.CharField(max_length=1024, help_text="Relative to the artifact root.")
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=100, default="application/octet-stream")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.filename


class JobResult(models.Model):
    """Measured quality and speed of one format of a job, beside its projection."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="results")
    format = models.CharField(max_length=64)
    artifact = models.OneToOneField(
        Artifact,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="result",
    )
    metrics = models.JSONField(default=dict)
    projection = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "format"], name="one_result_per_format"
            )
        ]

    def __str__(self) -> str:
        return f"{self.job_id} {self.format}"


class ModelUpload(models.Model):
    """A model file a user uploaded (GGUF, or a safetensors model directory archive)."""

    class Kind(models.TextChoices):
        GGUF = "gguf", "GGUF file"
        HF = "hf", "Hugging Face safetensors directory"

    class Status(models.TextChoices):
        CHECKING = "checking", "Checking"
        READY = "ready", "Ready"
        REFUSED = "refused", "Refused"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="model_uploads"
    )
    filename = models.CharField(max_length=255)
    name = models.CharField(
        max_length=200,
        blank=True,
        help_text="The model the file holds (general.name, or the config's name).",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    path = models.CharField(max_length=1024, help_text="Relative to the upload root.")
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    model_id = models.CharField(max_length=200, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    model_spec = models.JSONField(
        default=dict, blank=True, help_text="The model's shape (planner ModelSpec)."
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.READY, db_index=True
    )
    reason = models.TextField(blank=True, help_text="Why it was refused.")
    created_at = models.DateTimeField(default=timezone.now)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or self.filename

    @property
    def abspath(self) -> Any:
        """Absolute path of the stored file or directory."""
        from pathlib import Path

        return Path(settings.QUANTPLAN_UPLOAD_ROOT) / self.path


class WorkerHeartbeat(models.Model):
    """A worker announces itself: host, queues and hardware, refreshed while it runs."""

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.JSONField(default=list)
    capabilities = models.JSONField(default=dict)
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname


class CalibrationRecord(models.Model):
    """One (projected, measured) pair of one quantity of one job result: the ledger.

    Kept with what it was measured on (the worker's fingerprint and a device key
    made from it), the model (id, family, parameters), the format and the engine,
    so that errors can be summarised and projections refitted per device.
    """

    class Quantity(models.TextChoices):
        ARTIFACT_BYTES = "artifact_bytes", "File size"
        MEMORY_BYTES = "memory_bytes", "Serving memory"
        PROMPT_TOKENS_PER_S = "prompt_tokens_per_s", "Prompt tokens/s"
        GENERATION_TOKENS_PER_S = "generation_tokens_per_s", "Generation tokens/s"
        PERPLEXITY_CHANGE_PCT = "perplexity_change_pct", "Perplexity change (%)"
        KL_DIVERGENCE = "kl_divergence", "KL divergence"
        EXACT_MATCH_DROP_POINTS = "exact_match_drop_points", "Exact-match drop (points)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="calibration_records",
    )
    result = models.ForeignKey(
        JobResult, on_delete=models.CASCADE, related_name="calibration_records"
    )
    quantity = models.CharField(max_length=32, choices=Quantity.choices)
    projected = models.FloatField(null=True, blank=True)
    measured = models.FloatField()
    projection_basis = models.CharField(max_length=200, blank=True)
    # The uncalibrated model's value (the roofline for speed): what refits use.
    baseline = models.FloatField(null=True, blank=True)
    device_key = models.CharField(max_length=300, blank=True, db_index=True)
    fingerprint = models.JSONField(default=dict, blank=True)
    engine = models.CharField(max_length=64, blank=True)
    model_id = models.CharField(max_length=200, blank=True)
    model_family = models.CharField(max_length=100, blank=True)
    parameter_count = models.BigIntegerField(null=True, blank=True)
    format = models.CharField(max_length=64)
    format_family = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["result", "quantity"], name="one_record_per_quantity"
            )
        ]

    def __str__(self) -> str:
        return f"{self.format} {self.quantity}: {self.projected} -> {self.measured}"

    @property
    def error_pct(self) -> float | None:
        """Measured against projected, in % of the projection."""
        if not self.projected:
            return None
        return (self.measured - self.projected) / self.projected * 100.0


class TusUpload(models.Model):
    """A browser upload in progress (tus 1.0 resumable upload): how much has arrived,
    and, once complete, the ModelUpload it became or why it was refused."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tus_uploads"
    )
    filename = models.CharField(max_length=255)
    length_bytes = models.BigIntegerField()
    offset_bytes = models.BigIntegerField(default=0)
    path = models.CharField(max_length=1024, help_text="Relative to the upload root.")
    result = models.ForeignKey(
        ModelUpload, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.offset_bytes}/{self.length_bytes})"
