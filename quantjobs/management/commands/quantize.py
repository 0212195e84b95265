"""``manage.py quantize``: create a quantize-and-benchmark job, optionally wait for it."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

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
            required=True,
            help="Format, e.g. Q4_K_M (GGUF), awq-4bit-g64; repeatable.",
        )
        parser.add_argument(
            "--eval", dest="eval_file", default=None, help=".txt or .jsonl"
        )
        parser.add_argument(
            "--user", default=None, help="Owner (default: first superuser)."
        )
        parser.add_argument("--context", type=int, default=None)
        parser.add_argument("--max-chunks", type=int, default=None)
        parser.add_argument(
            "--timeout", type=float, default=None, help="Seconds to --wait."
        )
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        user = self._user(options["user"])
        method = options["method"]
        formats = [self._format(method, t) for t in options["types"]]
        kind, ref = _source(options["source"])
        eval_path = Path(options["eval_file"]) if options["eval_file"] else None
        if eval_path is not None and not eval_path.is_file():
            raise CommandError(f"{eval_path}: no such file.")
        opts = {
            k: options[o]
            for k, o in (("context_tokens", "context"), ("max_chunks", "max_chunks"))
            if options[o]
        }
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
                self.stdout.write(
                    f"  {r['format']}: {r['artifact_bytes']:,} bytes, PPL {r['perplexity']:.3f} "
                    f"(reference {r['base_perplexity']:.3f}), KLD {r['kl_divergence']:.4f}"
                )
        if options["wait"] and job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"Job {job.pk} ended {job.status}: {job.error}")

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
