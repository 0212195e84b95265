"""``manage.py quantize``: create a quantize-and-benchmark job, optionally wait for it."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from quantjobs import services
from quantjobs.api.serializers import JobOutput
from quantjobs.broker import BrokerUnavailable
from quantjobs.models import Job
from quantjobs.selectors import job_model


def _source(text: str) -> tuple[str, str]:
    """``sample``, ``sample:ID``, ``hf:org/name``, ``upload:ID`` or a local path."""
    if text == "sample":
        return Job.SourceKind.SAMPLE, ""
    kind, sep, ref = text.partition(":")
    if sep and kind in ("sample", "hf", "upload"):
        return kind, ref
    return Job.SourceKind.LOCAL, text


class Command(BaseCommand):
    help = "Quantize and benchmark a model on the workers; --wait prints the results."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--source",
            default="sample",
            help="sample | sample:ID | hf:ORG/NAME | upload:ID | PATH",
        )
        parser.add_argument(
            "--method", default="gguf", choices=[m.value for m in Job.Method]
        )
        parser.add_argument(
            "--type",
            dest="types",
            action="append",
            default=None,
            help="Format, e.g. Q4_K_M (GGUF), awq-4bit-g64; repeatable. With "
            "--search: the candidates (default: Q2_K ... Q8_0 for GGUF).",
        )
        parser.add_argument(
            "--search",
            action="store_true",
            help="Find the smallest format within a quality bar (one --max-... "
            "option): candidates are tried smallest first, stopping at the first "
            "that passes. GGUF runs on CPU workers; AWQ/GPTQ need a GPU worker.",
        )
        bars = parser.add_mutually_exclusive_group()
        bars.add_argument(
            "--max-ppl-change-pct", type=float, default=None,
            help="Search bar: perplexity change in %% (e.g. 3).",
        )  # fmt: skip
        bars.add_argument(
            "--max-kld", type=float, default=None,
            help="Search bar: KL divergence in nats (e.g. 0.05).",
        )  # fmt: skip
        bars.add_argument(
            "--max-exact-match-drop", type=float, default=None,
            help="Search bar: exact-match drop in points; needs --eval with "
            "prompt/answer lines.",
        )  # fmt: skip
        parser.add_argument(
            "--eval", dest="eval_file", default=None, help=".txt or .jsonl"
        )
        parser.add_argument(
            "--user", default=None, help="Owner (default: first superuser)."
        )
        parser.add_argument("--context", type=int, default=None)
        parser.add_argument("--max-chunks", type=int, default=None)
        parser.add_argument(
            "--bench-prompt-tokens", type=int, default=None, help="pp test (512)."
        )
        parser.add_argument(
            "--bench-generation-tokens", type=int, default=None, help="tg test (128)."
        )
        parser.add_argument(
            "--bench-repetitions", type=int, default=None, help="Speed runs (5)."
        )
        parser.add_argument(
            "--calibration-file",
            default=None,
            help="A .txt of your domain for the importance matrix, AWQ and GPTQ.",
        )
        parser.add_argument(
            "--imatrix",
            choices=["auto", "on", "off"],
            default=None,
            help="Importance matrix: where llama.cpp recommends one (auto), always, never.",
        )
        parser.add_argument(
            "--chat-template",
            choices=["auto", "off"],
            default=None,
            help="Prompt/answer sets in the model's chat template (auto) or bare.",
        )
        parser.add_argument(
            "--timeout", type=float, default=None, help="Seconds to --wait."
        )
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        user = self._user(options["user"])
        method = options["method"]
        formats = [self._format(method, t) for t in options["types"] or []]
        search_metric, search_max = self._search_bar(options)
        if not formats and not search_metric:
            raise CommandError("Give at least one --type (or --search with a bar).")
        kind, ref = _source(options["source"])
        eval_path = Path(options["eval_file"]) if options["eval_file"] else None
        if eval_path is not None and not eval_path.is_file():
            raise CommandError(f"{eval_path}: no such file.")
        opts = {
            k: options[o]
            for k, o in (
                ("context_tokens", "context"),
                ("max_chunks", "max_chunks"),
                ("bench_prompt_tokens", "bench_prompt_tokens"),
                ("bench_generation_tokens", "bench_generation_tokens"),
                ("bench_repetitions", "bench_repetitions"),
                ("chat_template", "chat_template"),
                ("imatrix", "imatrix"),
            )
            if options[o]
        }
        for key, low, high in (
            ("bench_prompt_tokens", 1, 8192),
            ("bench_generation_tokens", 1, 4096),
            ("bench_repetitions", 1, 50),
        ):
            value = options[key]
            if value is not None and not low <= value <= high:
                flag = "--" + key.replace("_", "-")
                raise CommandError(f"{flag} must be between {low} and {high}.")
        if options["calibration_file"]:
            opts.update(
                self._store_calibration(user.pk, Path(options["calibration_file"]))
            )
        try:
            # The service checks and stores the file only if the job is accepted.
            with ExitStack() as stack:
                eval_file = (
                    File(stack.enter_context(eval_path.open("rb")), name=eval_path.name)
                    if eval_path is not None
                    else None
                )
                job = services.job_create(
                    user=user,
                    method=method,
                    formats=formats,
                    source_kind=kind,
                    source_ref=ref,
                    eval_file=eval_file,
                    options=opts,
                    search_metric=search_metric,
                    search_max=search_max,
                )
        except (
            services.JobInputError,
            services.QuotaExceeded,
            BrokerUnavailable,
        ) as exc:
            raise CommandError(str(exc)) from None
        if options["wait"]:
            if not options["json"]:
                # Said before the wait: what is quantized and what it is measured against.
                model = job_model(job=job)
                self.stderr.write(f"Model: {model.name}")
                if model.reference and model.reference["warning"]:
                    self.stderr.write(f"Warning: {model.reference['warning']}")
            job = self._wait(job, options["timeout"], quiet=options["json"])
        data = JobOutput(job, context={}).data
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        else:
            self.stdout.write(f"Job {job.pk}: {job.status} {job.error}")
            model = data["model"]
            self.stdout.write(f"  model: {model['name']}")
            reference = model["reference"]
            if reference:
                self.stdout.write(f"  reference: {reference['label']}")
                if reference["warning"]:
                    self.stdout.write(f"  warning: {reference['warning']}")
            for r in data["results"]:
                size = (
                    f"{r['artifact_bytes']:,} bytes"
                    if r["artifact_bytes"] is not None
                    else "file removed (search)"
                )
                self.stdout.write(
                    f"  {r['format']}: {size}, PPL {r['perplexity']:.3f} "
                    f"(reference {r['base_perplexity']:.3f}), KLD {r['kl_divergence']:.4f}"
                )
            self._write_search(data.get("search") or {})
        if options["wait"] and job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"Job {job.pk} ended {job.status}: {job.error}")

    def _search_bar(self, options: dict[str, Any]) -> tuple[str, float | None]:
        """(metric, bar) from --search and its --max-... option, or ("", None)."""
        given = [
            (metric, options[key])
            for metric, key in (
                ("perplexity_change_pct", "max_ppl_change_pct"),
                ("kl_divergence", "max_kld"),
                ("exact_match_drop_points", "max_exact_match_drop"),
            )
            if options[key] is not None
        ]
        if not options["search"]:
            if given:
                raise CommandError("A --max-... bar only applies with --search.")
            return "", None
        if not given:
            raise CommandError(
                "--search needs a bar: --max-ppl-change-pct, --max-kld or "
                "--max-exact-match-drop."
            )
        return given[0]

    def _write_search(self, search: dict[str, Any]) -> None:
        """The search's trail and answer, as the job page shows them."""
        if not search:
            return
        self.stdout.write(f"  search: {search['label']}, smallest first")
        for trial in search.get("trail", []):
            self.stdout.write(f"    {trial['format']}: {trial['reason']}")
        if search.get("summary"):
            self.stdout.write(f"  {search['summary']}")

    def _format(self, method: str, text: str) -> str:
        if method == Job.Method.GGUF and not text.lower().startswith("gguf-"):
            return f"gguf-{text}"
        return text

    def _user(self, username: str | None) -> Any:
        users = get_user_model().objects
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"No user {username!r}.")
            return user
        user = (
            users.filter(is_superuser=True).order_by("pk").first()
            or users.order_by("pk").first()
        )
        if user is None:
            user = users.create_user(username="cli", password=None)
        return user

    def _store_calibration(self, user_id: int, path: Path) -> dict[str, str]:
        from quantjobs.evaltext import EvalTextError, parse_calibration_text

        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        try:
            parse_calibration_text(path.read_bytes(), path.name)
        except EvalTextError as exc:
            raise CommandError(str(exc)) from None
        dest_dir = Path(settings.QUANTPLAN_UPLOAD_ROOT) / str(user_id) / "calibration"
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"{uuid.uuid4()}.txt"
        shutil.copyfile(path, dest)
        return {"calibration_text_path": str(dest), "calibration_text_name": path.name}

    def _wait(self, job: Job, timeout: float | None, *, quiet: bool) -> Job:
        deadline = time.monotonic() + timeout if timeout else None
        last = ""
        while True:
            job.refresh_from_db()
            line = f"{job.status} {job.progress * 100:5.1f}% {job.stage}"
            if line != last and not quiet:
                self.stderr.write(line)
                last = line
            if job.is_terminal:
                return job
            if deadline and time.monotonic() > deadline:
                raise CommandError(
                    f"Job {job.pk} still {job.status} after {timeout:.0f} s."
                )
            time.sleep(1.0)
