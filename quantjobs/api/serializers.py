"""API shapes for jobs and artifacts: one serializer per direction."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.schema import stored_json
from quantjobs.models import Artifact, Job, JobResult
from quantjobs.presenters import result_row
from quantjobs.search import SEARCH_HELP, SEARCH_MAX_HELP, search_metric_choices
from quantjobs.selectors import job_model

from .search_serializers import SearchOutput


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
        choices=search_metric_choices(),
        required=False,
        help_text=f"Makes the job a search. {SEARCH_HELP}",
    )
    search_max = serializers.FloatField(required=False, help_text=SEARCH_MAX_HELP)
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


def _num(help_text: str = "") -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, help_text=help_text)


def _int(help_text: str = "") -> serializers.IntegerField:
    return serializers.IntegerField(allow_null=True, help_text=help_text)


def _text(help_text: str = "") -> serializers.CharField:
    return serializers.CharField(allow_null=True, help_text=help_text)


class SpeedSamplesOutput(serializers.Serializer[dict[str, Any]]):
    """One llama-bench style test (pp<N> or tg<N>): every run and their summary."""

    test = serializers.CharField(help_text="e.g. 'pp512', 'tg128'")
    tokens = serializers.IntegerField()
    repetitions = serializers.IntegerField()
    runs_tokens_per_s = serializers.ListField(child=serializers.FloatField())
    median_tokens_per_s = serializers.FloatField()
    min_tokens_per_s = serializers.FloatField()
    max_tokens_per_s = serializers.FloatField()
    stdev_tokens_per_s = serializers.FloatField()
    # Results measured before the CPU share was recorded lack these two.
    runs_cpu_share = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        help_text="CPU seconds over wall time x threads, per run (1: uncontended).",
    )
    contended_runs = serializers.IntegerField(
        required=False, help_text="Runs that got too little CPU time: contended."
    )
    # Results measured before steal, wait and spread were recorded lack these.
    runs_steal_share = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        help_text="Per run: share of the machine's CPU time the hypervisor took "
        "(/proc/stat steal).",
    )
    runs_wait_share = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        help_text="Per run: share of the threads' time spent waiting for a core "
        "another process held.",
    )
    spread_pct = serializers.FloatField(
        required=False, help_text="(max - min) of the runs, % of their median."
    )
    spread_warning = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="Set when the runs spread more than 10%: the median is unreliable.",
    )


class SpeedOutput(serializers.Serializer[dict[str, Any]]):
    """How the speed was measured: the runs, threads, load, CPU and llama.cpp build."""

    prompt = SpeedSamplesOutput(allow_null=True)
    generation = SpeedSamplesOutput(allow_null=True)
    threads = _int()
    load_average_before = serializers.ListField(
        child=serializers.FloatField(), allow_null=True
    )
    load_average_after = serializers.ListField(
        child=serializers.FloatField(), allow_null=True
    )
    process_id = _int()
    cpu_model = _text()
    llama_cpp_system_info = _text()
    notes = serializers.ListField(child=serializers.CharField())


class ProvenanceOutput(serializers.Serializer[dict[str, Any]]):
    """Which numbers of the row were measured and which are estimates."""

    measured = serializers.ListField(child=serializers.CharField())
    estimated = serializers.ListField(child=serializers.CharField())


class MatchDropOutput(serializers.Serializer[dict[str, Any]]):
    """A paired drop in points (reference minus format) with its 95% interval."""

    points = serializers.FloatField()
    ci95_low_points = serializers.FloatField()
    ci95_high_points = serializers.FloatField()


class TaskQualityOutput(serializers.Serializer[dict[str, Any]]):
    """Exact and normalised match on a prompt/answer set, beside the reference's."""

    questions = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Prompts that did not fit.")
    exact_match = _num()
    normalised_match = _num()
    reference_exact_match = serializers.FloatField(required=False)
    reference_normalised_match = serializers.FloatField(required=False)
    exact_match_drop = MatchDropOutput(required=False)
    normalised_match_drop = MatchDropOutput(required=False)
    normalised_match_relative_pct = serializers.FloatField(
        required=False, allow_null=True
    )
    sentence = _text("The result in words, with its numbers.")


class CalibrationLabelOutput(serializers.Serializer[dict[str, Any]]):
    """Which calibration text was used, and the tokens the importance matrix used."""

    source = _text()
    importance_matrix = serializers.BooleanField()
    imatrix_tokens = _int()
    imatrix_chunks = _int()
    imatrix_seconds = _num()
    calibration_samples = _int("AWQ/GPTQ: calibration samples.")
    calibration_seq_len = _int("AWQ/GPTQ: tokens per sample.")
    tokens_used = _int("Calibration tokens really used (null: none).")
    tokens_used_how = serializers.CharField(allow_blank=True)


class ResultOutput(serializers.Serializer[JobResult]):
    """One format's measurements beside the planner's projection (projected_* are
    estimates, *_diff_pct how far the measurement is from them; null: not measured
    or not projected)."""

    format = serializers.CharField()
    artifact_id = _text()
    artifact_bytes = _int()
    projected_artifact_bytes = _int()
    artifact_bytes_diff_pct = _num()
    sha256 = _text()
    download_url = _text()
    perplexity = _num()
    base_perplexity = _num("The reference's perplexity on the same tokens.")
    perplexity_change_pct = _num()
    kl_divergence = _num()
    top1_agreement = _num()
    tokens_evaluated = _int()
    prompt_tokens_per_s = _num()
    generation_tokens_per_s = _num()
    projected_model = _text()
    projection_note = _text("Why there is no projection, when there is none.")
    peak_memory_bytes = _int()
    projected_memory_bytes = _int()
    projected_memory_note = _text()
    memory_diff_pct = _num()
    gpu_peak_memory_bytes = _int()
    job_peak_memory_bytes = _int()
    load_time_s = _num()
    exact_match = _num()
    projected_prompt_tokens_per_s = _num()
    prompt_tokens_per_s_diff_pct = _num()
    projected_generation_tokens_per_s = _num(
        "For this worker's device when it reported one, else for a generic CPU."
    )
    generation_tokens_per_s_diff_pct = _num()
    projected_speed_note = _text()
    projected_speed_device = _text()
    projected_speed_basis = _text()
    projected_prompt_speed_basis = _text()
    memory_measured_how = _text()
    speed = SpeedOutput(allow_null=True)
    provenance = ProvenanceOutput()
    task_quality = TaskQualityOutput(allow_null=True)
    calibration = CalibrationLabelOutput(allow_null=True)
    answers_download_url = _text("Per-question outputs as JSONL, when there are.")
    reference = ReferenceOutput(allow_null=True)

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

    formats = serializers.ListField(child=serializers.CharField())
    search = stored_json(SearchOutput)

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


class UploadSummaryOutput(serializers.Serializer[dict[str, Any]]):
    """What the check read from the file: a GGUF's header, or an archive's config
    and weights (empty while the upload is checking)."""

    architecture = serializers.CharField(required=False, allow_null=True)
    file_type = serializers.CharField(required=False, allow_null=True)
    tensor_count = serializers.IntegerField(required=False, allow_null=True)
    model_type = serializers.CharField(required=False, allow_null=True)
    weight_bytes = serializers.IntegerField(required=False, allow_null=True)
    parameter_count = serializers.IntegerField(required=False, allow_null=True)


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
    summary = stored_json(UploadSummaryOutput)
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


class CalibrationPointOutput(serializers.Serializer[dict[str, Any]]):
    """One (projected, measured) pair on the calibration chart."""

    projected = serializers.FloatField(allow_null=True)
    measured = serializers.FloatField()
    format = serializers.CharField()
    basis = serializers.CharField(allow_blank=True)
    device = serializers.CharField(allow_blank=True)


class CalibrationSummaryOutput(serializers.Serializer[dict[str, Any]]):
    """The error of one projected quantity over your measurements, in %."""

    quantity = serializers.CharField()
    label = serializers.CharField()
    measurements = serializers.IntegerField()
    n = serializers.IntegerField(help_text="Measurements with a projection to compare.")
    median_pct = serializers.FloatField(allow_null=True)
    p90_abs_pct = serializers.FloatField(allow_null=True)
    worst_pct = serializers.FloatField(allow_null=True)
    points = CalibrationPointOutput(many=True)


class CalibrationRecordOutput(serializers.Serializer[Any]):
    """One projected quantity of one job result beside its measurement."""

    job_id = serializers.UUIDField(source="result.job_id")
    format = serializers.CharField()
    quantity = serializers.CharField()
    projected = serializers.FloatField(allow_null=True)
    measured = serializers.FloatField()
    error_pct = serializers.FloatField(allow_null=True)
    projection_basis = serializers.CharField(allow_blank=True)
    device = serializers.CharField(source="device_key", allow_blank=True)
    engine = serializers.CharField(allow_blank=True)
    model_id = serializers.CharField(allow_blank=True)
    model_family = serializers.CharField(allow_blank=True)
    parameter_count = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class MeasurementsOutput(serializers.Serializer[Any]):
    """The calibration ledger: per quantity the error summary, and the latest pairs."""

    summary = CalibrationSummaryOutput(many=True)
    records = CalibrationRecordOutput(many=True)
