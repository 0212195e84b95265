"""API shapes for jobs and artifacts: one serializer per direction."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from quantjobs.models import Artifact, Job, JobResult
from quantjobs.presenters import result_row
from quantjobs.selectors import job_model


class JobCreateInput(serializers.Serializer[Any]):
    """A request to quantize and benchmark one source into one or more formats."""

    method = serializers.ChoiceField(choices=Job.Method.choices)
    formats = serializers.ListField(
        child=serializers.CharField(max_length=64),
        min_length=1,
        max_length=12,
        required=False,
        help_text="The formats to make; for a search, its candidates (default: the "
        "method's usual ladder, e.g. Q2_K ... Q8_0), tried smallest first.",
    )
    # Accuracy-aware search: the smallest candidate whose measured loss is within
    # the bar. GGUF runs on CPU workers; AWQ and GPTQ candidates need a GPU worker.
    search_metric = serializers.ChoiceField(
        choices=[
            ("perplexity_change_pct", "perplexity change, %"),
            ("kl_divergence", "KL divergence, nats"),
            ("exact_match_drop_points", "exact-match drop, points (needs a "
             "prompt/answer .jsonl eval_file)"),
        ],
        required=False,
        help_text="Makes the job a search: try the candidates smallest first and "
        "stop at the first within search_max. GGUF searches run on CPU workers; "
        "AWQ and GPTQ need a GPU worker.",
    )  # fmt: skip
    search_max = serializers.FloatField(
        required=False,
        help_text="The largest loss to accept: 3 for 3% perplexity change, 0.05 for "
        "a KLD of 0.05, 5 for 5 exact-match points.",
    )
    source_kind = serializers.ChoiceField(
        choices=Job.SourceKind.choices, default=Job.SourceKind.SAMPLE
    )
    source_ref = serializers.CharField(
        max_length=1024, required=False, allow_blank=True
    )
    source_revision = serializers.RegexField(
        r"^[A-Za-z0-9._/-]{0,64}$", required=False, allow_blank=True, max_length=64
    )
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    eval_file = serializers.FileField(required=False, allow_null=True)
    context_tokens = serializers.IntegerField(
        min_value=64, max_value=8192, required=False
    )
    max_chunks = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    # Speed as llama-bench measures it: pp<N> and tg<N>, repeated after a warm-up.
    bench_prompt_tokens = serializers.IntegerField(
        min_value=1, max_value=8192, required=False
    )
    bench_generation_tokens = serializers.IntegerField(
        min_value=1, max_value=4096, required=False
    )
    bench_repetitions = serializers.IntegerField(
        min_value=1, max_value=50, required=False
    )
    calibration_file = serializers.FileField(required=False, allow_null=True)
    imatrix = serializers.ChoiceField(
        choices=[
            ("auto", "where llama.cpp needs or recommends one (IQ types)"),
            ("on", "for every GGUF type"),
            ("off", "never (types that need one are refused)"),
        ],
        required=False,
    )
    chat_template = serializers.ChoiceField(
        choices=[
            ("auto", "the model's own chat template for prompt/answer sets"),
            ("off", "bare prompts"),
        ],
        required=False,
    )
    timeout_s = serializers.IntegerField(
        min_value=10, max_value=24 * 3600, required=False
    )
    plan = serializers.UUIDField(required=False, allow_null=True)


class ReferenceOutput(serializers.Serializer[dict[str, Any]]):
    """What quality is measured against: the unquantized model, or for an already
    quantized source that file dequantized (then ``warning`` says so)."""

    kind = serializers.ChoiceField(choices=["dequantized", "source", "converted"])
    label = serializers.CharField(help_text="e.g. 'the Q4_1 file, dequantized'")
    quantized_source = serializers.BooleanField()
    warning = serializers.CharField(allow_blank=True)
    source_type = serializers.CharField(allow_null=True, help_text="e.g. 'Q4_1'")


class JobModelOutput(serializers.Serializer[dict[str, Any]]):
    """The model a job quantized; never the plan's model unless it is that model."""

    name = serializers.CharField()
    ident = serializers.CharField()
    plan_model = serializers.CharField(allow_null=True)
    stand_in_for = serializers.CharField(
        allow_null=True,
        help_text="The linked plan's model, when this job quantized another one.",
    )
    same_as_plan = serializers.BooleanField()
    source_quantization = serializers.CharField(allow_null=True)
    reference = ReferenceOutput(allow_null=True)


class ResultOutput(serializers.ModelSerializer[JobResult]):
    """One format's measurements beside the planner's projection."""

    class Meta:
        model = JobResult
        fields = ["format"]

    def to_representation(self, instance: JobResult) -> dict[str, Any]:
        return result_row(instance, request=self.context.get("request"))


class FormatOutcomeOutput(serializers.Serializer[Any]):
    """How one requested format of a job ended."""

    format = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["pending", "succeeded", "failed", "not run"]
    )
    error = serializers.CharField(allow_blank=True)


class JobOutput(serializers.ModelSerializer[Job]):
    """A job as its owner sees it.

    ``status`` PARTIAL means some formats succeeded (their results and artifacts
    stay, downloadable and counted in the storage quota) and one failed;
    ``format_outcomes`` says, per format, which.

    ``search`` (empty for a plain job): the bar, the candidates smallest first, the
    ``trail`` of those tried (measured value, passed, why), the ``answer`` and
    ``summary``. A search that finds no format within its bar still SUCCEEDS,
    with ``answer`` null and ``closest``/``closest_value`` naming the nearest miss;
    only the answer's (or the closest miss's) artifact is kept.
    """

    search = serializers.JSONField(read_only=True)

    results = ResultOutput(many=True, read_only=True)
    format_outcomes = FormatOutcomeOutput(many=True, read_only=True)
    log = serializers.ListField(source="log_lines", child=serializers.CharField())
    duration_s = serializers.FloatField(allow_null=True)
    waiting_for = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "method",
            "formats",
            "source_kind",
            "source_ref",
            "source_revision",
            "model_id",
            "model",
            "eval_text_name",
            "queue",
            "status",
            "progress",
            "stage",
            "error",
            "attempts",
            "worker",
            "created_at",
            "started_at",
            "finished_at",
            "duration_s",
            "waiting_for",
            "plan",
            "search",
            "format_outcomes",
            "results",
            "log",
        ]

    @extend_schema_field(JobModelOutput)
    def get_model(self, job: Job) -> dict[str, Any]:
        """The model quantized, the plan's model it stands in for, the reference."""
        return dataclasses.asdict(job_model(job=job))

    def get_waiting_for(self, job: Job) -> str | None:
        """A message when a queued job has no worker of its kind to run it."""
        waiting = self.context.get("queues_without_workers")
        if job.status == Job.Status.QUEUED and waiting and job.queue in waiting:
            return (
                f"No worker is consuming the {job.queue} queue right now; the job will "
                f"start when one joins (see the README: starting a {job.queue} worker)."
            )
        return None


class ArtifactOutput(serializers.ModelSerializer[Artifact]):
    """A downloadable file with its checksum."""

    download_url = serializers.SerializerMethodField()
    job = serializers.UUIDField(source="job_id")

    class Meta:
        model = Artifact
        fields = [
            "id",
            "job",
            "format",
            "filename",
            "size_bytes",
            "sha256",
            "content_type",
            "created_at",
            "download_url",
        ]

    def get_download_url(self, artifact: Artifact) -> str:
        path = reverse("api-artifact-download", args=[artifact.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class UploadOutput(serializers.Serializer[Any]):
    """An uploaded model, usable as a job source (``source_kind: upload``) once
    ``status`` is ready; ``size_bytes`` (unpacked, once checked) counts in the
    storage quota."""

    id = serializers.UUIDField()
    name = serializers.CharField(
        help_text="The model the file holds (general.name, or the config's name)."
    )
    filename = serializers.CharField()
    kind = serializers.CharField()
    size_bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    summary = serializers.DictField()
    status = serializers.ChoiceField(
        choices=["checking", "ready", "refused"],
        help_text="checking (on a worker), then ready, or refused with the reason; "
        "only a ready upload can be a job's source.",
    )
    reason = serializers.CharField(allow_blank=True)
    spec_error = serializers.SerializerMethodField(
        help_text="Why the planner cannot size this model (null when it can)."
    )
    created_at = serializers.DateTimeField()
    checked_at = serializers.DateTimeField(allow_null=True)

    def get_spec_error(self, upload: Any) -> str | None:
        error = (upload.model_spec or {}).get("error")
        return str(error) if error else None


class UploadCreateInput(serializers.Serializer[Any]):
    """A model file: .gguf, or a .tar/.zip of a safetensors model directory."""

    file = serializers.FileField()
