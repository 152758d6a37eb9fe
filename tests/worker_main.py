"""Start `relay_worker` for a test, optionally with the process's clock moved (time-machine),
to prove that workers compare due times and leases against the database's clock only.

    python -m tests.worker_main [relay_worker options]
    RELAY_TEST_CLOCK_OFFSET=600 python -m tests.worker_main --burst
"""

import os
import sys
from datetime import UTC, datetime, timedelta


def main() -> None:
    offset = float(os.environ.get("RELAY_TEST_CLOCK_OFFSET", "0") or 0)
    if offset:
        import time_machine

        time_machine.travel(datetime.now(UTC) + timedelta(seconds=offset), tick=True).start()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", "relay_worker", *sys.argv[1:]])


if __name__ == "__main__":
    main()
