"""`manage.py relay_workflows plan|apply [PATH]` and `start NAME [--input JSON]`."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from queues.conf import relay_settings
from scheduler.definitions import sync
from scheduler.definitions.errors import InvalidDefinitions


def default_path() -> Path:
    folder = Path(relay_settings().WORKFLOWS_DIR)
    return folder if folder.is_absolute() else Path(settings.BASE_DIR) / folder


class Command(BaseCommand):
    help = ("Validate workflow files and show what would change (plan), store changed ones as "
            "new versions (apply), or start a run (start).")

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for action, text in (("plan", "show what apply would add or change"),
                             ("apply", "store new versions of changed workflows")):
            command = sub.add_parser(action, help=text)
            command.add_argument("path", nargs="?", default=None,
                                 help="A folder or one file (default RELAY['WORKFLOWS_DIR']).")
        start = sub.add_parser("start", help="start a run of the newest version")
        start.add_argument("name")
        start.add_argument("--input", default="{}", help="Run input as a JSON object.")

    def handle(self, *args, action: str, **options) -> None:
        if action == "start":
            return self._start(options["name"], options["input"])
        path = Path(options["path"]) if options["path"] else default_path()
        if action == "plan":
            result = sync.plan(path)
            self.stdout.write(result.render())
            if result.errors:
                raise CommandError(f"{len(result.errors)} invalid workflow definition(s); "
                                   f"nothing would be stored")
            return None
        try:
            result = sync.apply(path, created_by=f"relay_workflows apply ({_user()})")
        except InvalidDefinitions as exc:
            self.stderr.write("\n".join(str(e) for e in exc.errors))
            raise CommandError(f"{len(exc.errors)} invalid workflow definition(s); nothing "
                               f"was stored") from None
        except IntegrityError:
            raise CommandError("another apply stored a version of the same workflow at the "
                               "same time; nothing was stored by this one, run it again to "
                               "see the plan") from None
        self.stdout.write(result.render())
        stored = [c for c in result.changes if c.action != "unchanged"]
        self.stdout.write(self.style.SUCCESS(
            f"Applied: {len(stored)} new version(s), "
            f"{len(result.changes) - len(stored)} unchanged."))
        return None

    def _start(self, name: str, raw: str) -> None:
        from scheduler import engine

        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--input is not valid JSON: {exc}") from None
        try:
            run = engine.start_run(name, data, triggered_by=f"relay_workflows start "
                                                              f"({_user()})")
        except engine.WorkflowError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Started run #{run.pk} of {run.definition}.")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"
