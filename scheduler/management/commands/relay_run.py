"""`manage.py relay_run`: everything on one machine, for trying Relay out (`make run`).

Migrates, creates an admin login (printed, and kept in .relay/ so it stays the same across
restarts), enqueues example jobs, applies the example workflows and starts two runs, then
runs gunicorn, a worker and the scheduler until Ctrl-C.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from queues.management.processes import terminate
from queues.registry import registry


class Command(BaseCommand):
    help = ("Run Relay's web server, a worker and the scheduler together, with an admin login "
            "and examples.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument("--no-examples", action="store_true")

    def handle(self, *args, bind: str, concurrency: int, no_examples: bool, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        username, password = self._admin_login()
        if not no_examples:
            self._enqueue_examples()
            self._start_example_workflows()
        processes = [
            subprocess.Popen([sys.executable, "-m", "gunicorn", "relay_project.wsgi",
                              "--bind", bind, "--workers", "2", "--access-logfile", "-"],
                             cwd=settings.BASE_DIR, start_new_session=True),
            subprocess.Popen([sys.executable, "manage.py", "relay_worker",
                              "--queues", "default,reports,relay",
                              "--concurrency", str(concurrency)],
                             cwd=settings.BASE_DIR, start_new_session=True),
            subprocess.Popen([sys.executable, "manage.py", "relay_scheduler"],
                             cwd=settings.BASE_DIR, start_new_session=True),
        ]
        # Own sessions: Ctrl-C reaches only this process, which then sends each child exactly
        # one SIGTERM (a second signal would make the worker stop its jobs at once).
        self.stdout.write(self.style.SUCCESS(
            f"\nRelay is running: http://{bind}/dashboard/  (admin: http://{bind}/admin/)\n"
            f"  login:    {username}\n  password: {password}\n"
            f"  (stored in .relay/admin-password; Ctrl-C stops web, worker and scheduler)\n"
        ))
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.5)
        terminate(processes, timeout=40)

    def _admin_login(self) -> tuple[str, str]:
        folder = Path(settings.BASE_DIR) / ".relay"
        folder.mkdir(exist_ok=True)
        secret = folder / "admin-password"
        username = "admin"
        user_model = get_user_model()
        if secret.exists() and user_model.objects.filter(username=username).exists():
            return username, secret.read_text().strip()
        password = secrets.token_urlsafe(12)
        user, _ = user_model.objects.get_or_create(
            username=username, defaults={"email": "admin@example.com"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        return username, password

    def _start_example_workflows(self) -> None:
        """Apply the example workflow files (a new version only if they changed) and start
        one deploy and one incident runbook; the nightly report runs on its schedule."""
        from scheduler import engine
        from scheduler.definitions import sync

        if "examples.checkout" not in registry:
            return
        folder = Path(settings.BASE_DIR) / "relay_project" / "examples" / "workflows"
        sync.apply(folder, created_by="relay_run")
        engine.start_run("deploy-pipeline", {"service": "billing", "ref": "v2.4.1"},
                         triggered_by="relay_run example")
        engine.start_run("incident-runbook", {"service": "search", "error_threshold": 0.0},
                         triggered_by="relay_run example")
        self.stdout.write("Applied the example workflows and started two runs "
                          "(deploy-pipeline, incident-runbook).")

    def _enqueue_examples(self) -> None:
        from queues import enqueue

        if "examples.build_report" not in registry:
            return
        enqueue("examples.build_report", 42, period="monthly")
        enqueue("examples.build_report", 7, period="weekly", delay=30)
        enqueue("examples.flaky_api_call", "https://billing.internal/invoices")
        enqueue("examples.charge_card", 1001, 0)  # not retryable: lands in dead letters
        enqueue("examples.migrate_rows", "customers", batches=20)
        enqueue("relay.noop", dedup_key="example-nightly-cleanup")
        self.stdout.write("Enqueued 6 example jobs.")
