"""`python -m tests.run [pytest args]`: the whole suite on SQLite, then on PostgreSQL.

PostgreSQL comes from RELAY_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test;
the tests use a `test_`-prefixed database created next to it). When it is unreachable the
PostgreSQL pass is skipped with a warning -- unless CI is set, where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/test"


def postgres_error(url: str) -> str | None:
    """None if the server answers. The tests use their own `test_` database, so the named one
    need not exist: the check connects to the server's `postgres` database."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(url.replace("postgres://", "postgresql://", 1))
    try:
        with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), connect_timeout=5):
            return None
    except psycopg.Error as exc:
        return str(exc).strip()


def run_pass(label: str, database_url: str, args: list[str]) -> int:
    env = dict(os.environ, DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="tests.settings")
    env.setdefault("RELAY_TEST_SQLITE_PATH", str(ROOT / "relay-test.sqlite3"))
    print(f"\n=== {label} ===", flush=True)
    started = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)
    print(f"=== {label}: {'passed' if code == 0 else 'FAILED'} "
          f"in {time.monotonic() - started:.0f}s ===", flush=True)
    return code


def main(args: list[str]) -> int:
    url = os.environ.get("RELAY_TEST_DATABASE_URL", DEFAULT_POSTGRES)
    results = {"SQLite": run_pass("SQLite", "", args)}
    error = postgres_error(url)
    if error is None:
        results["PostgreSQL"] = run_pass("PostgreSQL", url, args)
    elif os.environ.get("CI"):
        print(f"\nPostgreSQL at {url} is unreachable and CI is set: failing.\n{error}")
        results["PostgreSQL"] = 1
    else:
        print(f"\nWARNING: PostgreSQL pass SKIPPED, {url} is unreachable ({error}).\n"
              f"Set RELAY_TEST_DATABASE_URL or start PostgreSQL; CI treats this as a failure.")
    print("\nSummary: " + ", ".join(
        f"{name} {'ok' if code == 0 else 'FAILED'}" for name, code in results.items()))
    return 0 if all(code == 0 for code in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
