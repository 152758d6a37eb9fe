import pytest
from django.core.exceptions import ImproperlyConfigured

from queues.conf import relay_settings


def test_unknown_or_invalid_relay_settings_are_refused(settings):
    settings.RELAY = {"POLL_INTERVALL": 1}
    with pytest.raises(ImproperlyConfigured, match="POLL_INTERVALL"):
        relay_settings()
    settings.RELAY = {"HEARTBEAT_INTERVAL": 10, "WORKER_STALE_AFTER": 5}
    with pytest.raises(ImproperlyConfigured, match="WORKER_STALE_AFTER"):
        relay_settings()
    settings.RELAY = {"DEFAULT_MAX_ATTEMPTS": None}
    assert relay_settings().DEFAULT_MAX_ATTEMPTS is None
