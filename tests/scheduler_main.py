"""Start `relay_scheduler` for a test, with the scheduler's clock (`scheduler.clock.now`)
replaced by a simulated one that several processes agree on:

    simulated now = START + (time.time() - REAL_START) * SPEED,   at most STOP

    RELAY_TEST_CLOCK_START=1767261600 RELAY_TEST_CLOCK_REAL_START=1767000000.5 \\
    RELAY_TEST_CLOCK_SPEED=120 python -m tests.scheduler_main --interval 0.2 --lease 1 --name a

START and REAL_START are Unix times (seconds, float); SPEED defaults to 1 (0 freezes the
clock at START); RELAY_TEST_CLOCK_STOP (Unix time) optionally halts simulated time there.
Without RELAY_TEST_CLOCK_START the scheduler keeps the database's clock. Only the time the
scheduler compares due times against moves: leases, job due times and every other timestamp
stay on the database's real clock.
"""

import os
import sys
import time
from datetime import UTC, datetime


def simulated_clock(start: float, real_start: float, speed: float, stop: float | None):
    def now() -> datetime:
        value = start + (time.time() - real_start) * speed
        if stop is not None:
            value = min(value, stop)
        return datetime.fromtimestamp(value, UTC)

    return now


def main() -> None:
    start = os.environ.get("RELAY_TEST_CLOCK_START", "")
    if start:
        from scheduler import clock

        stop = os.environ.get("RELAY_TEST_CLOCK_STOP", "")
        clock.now = simulated_clock(
            float(start),
            float(os.environ.get("RELAY_TEST_CLOCK_REAL_START", "") or time.time()),
            float(os.environ.get("RELAY_TEST_CLOCK_SPEED", "") or 1),
            float(stop) if stop else None,
        )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", "relay_scheduler", *sys.argv[1:]])


if __name__ == "__main__":
    main()
