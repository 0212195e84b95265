"""Forms of the pages: sign-up, tokens, jobs. Each keeps what the user typed on error."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User

from planner.engine.cost import ELECTRICITY_USD_PER_KWH, MAX_ELECTRICITY_USD_PER_KWH
from quantjobs.models import Job
from quantjobs.search import SEARCH_HELP, SEARCH_MAX_HELP, search_metric_choices


class SignUpForm(UserCreationForm):  # type: ignore[type-arg]
    """A new account: username, optional email, password twice."""

    email = forms.EmailField(required=False, help_text="Optional; for password resets.")

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class ApiTokenForm(forms.Form):
    """Name a new API token."""

    name = forms.CharField(
        max_length=100, help_text="What it is for, e.g. 'CI pipeline' or 'laptop'."
    )
    expires_in_days = forms.TypedChoiceField(
        choices=[("", "never"), (7, "in 7 days"), (30, "in 30 days"),
                 (90, "in 90 days"), (365, "in a year")],
        coerce=int,
        empty_value=None,
        required=False,
        label="Expires",
        help_text="Past this, requests with the token are refused.",
    )  # fmt: skip

    def expires_at(self) -> Any:
        """The chosen expiry as a time, or None for a token that never expires."""
        from datetime import timedelta

        from django.utils import timezone

        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


class JobForm(forms.Form):
    """Quantize and benchmark: method, formats, source and optional evaluation text."""

    method = forms.ChoiceField(choices=Job.Method.choices, initial=Job.Method.GGUF)
    formats = forms.CharField(
        max_length=400,
        initial="gguf-Q4_K_M",
        required=False,
        help_text="One or more formats separated by commas, e.g. gguf-Q8_0, gguf-Q4_K_M. "
        "For a search: the candidates (empty: Q2_K to Q8_0 for GGUF).",
    )
    search_metric = forms.ChoiceField(
        choices=[
            ("", "No search: make every format"),
            *(
                (metric, f"Smallest format within {_article(label)} {label}")
                for metric, label in search_metric_choices()
            ),
        ],
        required=False,
        label="Search",
        help_text=SEARCH_HELP,
    )
    search_max = forms.FloatField(
        required=False, label="Search bar", help_text=SEARCH_MAX_HELP
    )
    source_kind = forms.ChoiceField(
        choices=Job.SourceKind.choices, initial=Job.SourceKind.SAMPLE, label="Source"
    )
    source_ref = forms.CharField(
        max_length=1024,
        required=False,
        label="Source reference",
        help_text="Sample id, path on the worker, upload id, or Hugging Face id "
        "(empty: the bundled SmolLM2-135M sample).",
    )
    name = forms.CharField(max_length=200, required=False)
    eval_file = forms.FileField(
        required=False,
        label="Evaluation text",
        help_text="Optional .txt or .jsonl of your own task; default: built-in English text.",
    )
    context_tokens = forms.IntegerField(
        min_value=64,
        max_value=8192,
        initial=512,
        required=False,
        label="Context (tokens)",
    )
    max_chunks = forms.IntegerField(
        min_value=1, max_value=10_000, required=False, label="Max evaluation chunks"
    )
    bench_prompt_tokens = forms.IntegerField(
        min_value=1, max_value=8192, required=False, label="Speed test prompt (tokens)",
        help_text="llama-bench's pp test; default 512.",
    )  # fmt: skip
    bench_generation_tokens = forms.IntegerField(
        min_value=1, max_value=4096, required=False,
        label="Speed test generation (tokens)", help_text="tg test; default 128.",
    )  # fmt: skip
    bench_repetitions = forms.IntegerField(
        min_value=1, max_value=50, required=False, label="Speed test repetitions",
        help_text="Runs after a warm-up; the median is shown. Default 5.",
    )  # fmt: skip
    calibration_file = forms.FileField(
        required=False,
        label="Calibration text",
        help_text="Optional .txt of your own domain for the importance matrix, AWQ "
        "and GPTQ; default: built-in English text.",
    )
    imatrix = forms.ChoiceField(
        choices=[
            ("auto", "Where llama.cpp needs or recommends one (IQ types)"),
            ("on", "For every GGUF type"),
            ("off", "Never"),
        ],
        required=False,
        initial="auto",
        label="Importance matrix",
    )
    chat_template = forms.ChoiceField(
        choices=[
            ("auto", "The model's chat template (if it has one)"),
            ("off", "Bare prompts"),
        ],
        required=False,
        initial="auto",
        label="Prompt/answer sets",
    )
    plan = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, sample: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if sample is not None:
            # Say which model the sample is, and that it is already quantized.
            label = f"Bundled sample: {sample.name}"
            if sample.quantization:
                label += f", already quantized ({sample.quantization})"
            self.fields["source_kind"].choices = [
                (value, label if value == Job.SourceKind.SAMPLE else text)
                for value, text in Job.SourceKind.choices
            ]

    def clean_formats(self) -> list[str]:
        raw = self.cleaned_data["formats"]
        parts = [p.strip() for p in raw.replace("\n", ",").split(",") if p.strip()]
        if not parts and not self.data.get("search_metric"):
            raise forms.ValidationError("Enter at least one format.")
        return parts

    def cleaned_options(self) -> dict[str, Any]:
        return {
            k: self.cleaned_data[k]
            for k in (
                "context_tokens",
                "max_chunks",
                "bench_prompt_tokens",
                "bench_generation_tokens",
                "bench_repetitions",
                "chat_template",
                "imatrix",
            )
            if self.cleaned_data.get(k) not in (None, "")
        }


ENGINE_CHOICES = [
    ("vllm", "vLLM (GPU serving)"),
    ("llama.cpp", "llama.cpp (GPU or CPU)"),
]
KV_CHOICES = [
    ("f16", "f16"),
    ("bf16", "bf16"),
    ("fp8", "fp8"),
    ("q8_0", "q8_0 (llama.cpp)"),
    ("q4_0", "q4_0 (llama.cpp)"),
]


class PlanForm(forms.Form):
    """Plan a model on GPUs: catalog model, Hugging Face id, a pasted/uploaded config,
    or one of the user's uploaded models."""

    model = forms.CharField(
        max_length=200,
        required=False,
        label="Model",
        help_text="A catalog id (e.g. llama-3-70b) or a Hugging Face id (org/name).",
        widget=forms.TextInput(attrs={"list": "model-catalog", "autocomplete": "off"}),
    )
    config_text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        label="…or paste config.json",
    )
    config_file = forms.FileField(required=False, label="…or upload config.json")
    upload = forms.ChoiceField(
        choices=[],
        required=False,
        label="…or one of your uploaded models",
        help_text="A GGUF is planned from its own metadata: its format exactly as "
        "stored, every other format as if converted from it.",
    )
    gpus_chosen = forms.MultipleChoiceField(
        choices=[],
        label="GPUs (or CPU server)",
        help_text="Tick one or more: several are planned side by side.",
    )
    gpus = forms.IntegerField(
        min_value=1,
        max_value=64,
        required=False,
        label="GPUs per server",
        help_text="Empty: the fewest that fit.",
    )
    formats = forms.MultipleChoiceField(choices=[], label="Formats")
    context_tokens = forms.IntegerField(
        min_value=1, max_value=10_000_000, initial=8192, label="Context length (tokens)"
    )
    concurrency = forms.IntegerField(
        min_value=1, max_value=100_000, initial=8, label="Concurrent sequences"
    )
    engine = forms.ChoiceField(
        choices=ENGINE_CHOICES, initial="vllm", label="Serving engine"
    )
    kv_cache_dtype = forms.ChoiceField(
        choices=KV_CHOICES, initial="f16", label="KV cache type"
    )
    utilization = forms.FloatField(
        min_value=0.01,
        max_value=1.0,
        initial=0.5,
        label="Utilization (0–1)",
        help_text="Share of the month the servers do useful work.",
    )
    api_price = forms.ChoiceField(choices=[], required=False, label="Compare with API")
    price_usd_per_hour = forms.FloatField(
        min_value=0,
        max_value=10_000,
        required=False,
        label="Your price ($/GPU-hour)",
        help_text="Empty: catalog price.",
    )
    electricity_usd_per_kwh = forms.FloatField(
        min_value=0,
        max_value=MAX_ELECTRICITY_USD_PER_KWH,
        required=False,
        label="Electricity ($/kWh, if owned)",
        help_text=f"Empty: ${ELECTRICITY_USD_PER_KWH:g}/kWh. Prices the “Owned” column.",
    )
    max_quality_loss_pct = forms.FloatField(
        min_value=0, max_value=100, required=False, label="Max quality loss (%)"
    )
    min_tokens_per_s = forms.FloatField(
        min_value=0, required=False, label="Min tokens/s per sequence"
    )
    max_ttft_s = forms.FloatField(
        min_value=0, required=False, label="Max time to first token (s)"
    )
    name = forms.CharField(max_length=200, required=False, label="Plan name (to save)")

    def __init__(
        self,
        *args: Any,
        gpu_choices: list[tuple[str, str]],
        format_choices: list[tuple[str, str]],
        api_choices: list[tuple[str, str]],
        upload_choices: list[tuple[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["upload"].choices = [("", "— none —"), *(upload_choices or [])]
        self.fields["gpus_chosen"].choices = gpu_choices
        self.fields["formats"].choices = format_choices
        self.fields["api_price"].choices = [("", "— none —"), *api_choices]

    def clean(self) -> dict[str, Any]:
        from planner.services import PlanInputError, config_parse_text

        data = super().clean() or {}
        upload = data.get("config_file")
        text = data.get("config_text") or ""
        if upload is not None:
            if upload.size and upload.size > 1_000_000:
                self.add_error(
                    "config_file",
                    "config.json is larger than 1 MB; upload the model's own.",
                )
                return data
            text = upload.read().decode("utf-8", errors="replace")
        data["config"] = None
        if text.strip():
            try:
                data["config"] = config_parse_text(text)
            except PlanInputError as exc:
                self.add_error(
                    "config_file" if upload is not None else "config_text", str(exc)
                )
        elif not (data.get("model") or "").strip() and not data.get("upload"):
            self.add_error(
                "model",
                "Choose a model, give a Hugging Face id, or paste its config.json.",
            )
        return data
