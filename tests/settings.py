"""Settings for the test suite: the project's settings, a test app, and fast timings.

Worker processes started by tests use these settings too; a test passes extra RELAY options
to them through the RELAY_TEST_OVERRIDES environment variable (JSON).
"""

import json
import os

from relay_project.settings import *  # noqa: F403
from relay_project.settings import INSTALLED_APPS, REST_FRAMEWORK

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The API's request rates count in the process-wide cache, per user id (ids repeat between
# tests on SQLite): far above what any test sends. tests/api/test_tokens.py sets a low rate
# to check the limit itself.
REST_FRAMEWORK = {**REST_FRAMEWORK,
                  "DEFAULT_THROTTLE_RATES": {"user": "100000/minute"}}

RELAY = {
    "POLL_INTERVAL": 0.1,
    "HEARTBEAT_INTERVAL": 0.3,
    "WORKER_STALE_AFTER": 2.0,
    "RESCUE_INTERVAL": 0.3,
    "SHUTDOWN_GRACE": 10.0,
    "KILL_GRACE": 1.0,
    "DEFAULT_BACKOFF_BASE": 0.05,
    "DEFAULT_ACK_TIMEOUT": 30.0,
    **json.loads(os.environ.get("RELAY_TEST_OVERRIDES", "{}")),
}
