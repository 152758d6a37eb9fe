"""Who may scrape /metrics: loopback by default, a bearer token, an address list, or both.
A refused scrape gets 401/403 and never a metric."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError
from django.test import Client

from dashboard.metrics import snapshot
from queues import enqueue
from queues.conf import relay_settings
from tests.metrics.conftest import TOKEN, scrape


def get(remote: str = "127.0.0.1", auth: str | None = None, **headers):
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = auth
    return Client().get("/metrics", REMOTE_ADDR=remote, **headers)


def assert_refused(response, status: int) -> None:
    assert response.status_code == status
    assert b"relay_" not in response.content
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_by_default_this_machine_may_scrape(db, relay, remote):
    assert get(remote).status_code == 200


@pytest.mark.parametrize("remote", ["10.1.2.3", "192.168.0.7", "2001:db8::1", "not-an-ip"])
def test_by_default_other_addresses_are_refused(db, relay, remote):
    assert_refused(get(remote), 403)


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"])
def test_by_default_a_request_relayed_by_a_local_proxy_is_refused(db, relay, header):
    assert_refused(get("127.0.0.1", **{header: "203.0.113.9"}), 403)


def test_with_a_token_only_the_right_bearer_token_scrapes_from_anywhere(db, relay):
    relay(METRICS_TOKEN=TOKEN)
    missing = get("127.0.0.1")
    assert_refused(missing, 401)
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert_refused(get("127.0.0.1", auth="Bearer wrong-token-0123456789"), 403)
    assert_refused(get("127.0.0.1", auth=f"Bearer {TOKEN}x"), 403)
    assert_refused(get("127.0.0.1", auth=f"Basic {TOKEN}"), 403)
    assert_refused(get("127.0.0.1", auth=TOKEN), 403)
    assert get("203.0.113.9", auth=f"Bearer {TOKEN}").status_code == 200
    assert get("127.0.0.1", auth=f"bearer {TOKEN}").status_code == 200


def test_an_address_list_replaces_the_loopback_default(db, relay):
    relay(METRICS_ALLOWED_IPS=["10.0.0.0/8", "192.168.1.5"])
    assert get("10.20.30.40").status_code == 200
    assert get("192.168.1.5").status_code == 200
    assert_refused(get("192.168.1.6"), 403)
    assert_refused(get("127.0.0.1"), 403)


def test_token_and_address_list_must_both_pass(db, relay):
    relay(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_IPS=["10.0.0.0/8"])
    assert get("10.0.0.1", auth=f"Bearer {TOKEN}").status_code == 200
    assert_refused(get("192.168.1.1", auth=f"Bearer {TOKEN}"), 403)
    assert_refused(get("10.0.0.1", auth="Bearer wrong-token-0123456789"), 403)
    assert_refused(get("10.0.0.1"), 401)


def test_only_get_and_head(db, relay):
    assert Client().post("/metrics").status_code == 405
    assert Client().head("/metrics").status_code == 200


@pytest.mark.parametrize("options, error", [
    ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
    ({"METRICS_TOKEN": 12345678901234567}, "METRICS_TOKEN"),
    ({"METRICS_ALLOWED_IPS": "10.0.0.0/8"}, "not a string"),
    ({"METRICS_ALLOWED_IPS": ["10.0.0.300"]}, "10.0.0.300"),
    ({"METRICS_CACHE_SECONDS": -1}, "METRICS_CACHE_SECONDS"),
])
def test_bad_settings_are_refused_at_startup(relay, options, error):
    relay(**options)
    with pytest.raises(ImproperlyConfigured, match=error):
        relay_settings()


def test_the_rendering_is_reused_for_the_cache_time(db, relay):
    relay(METRICS_CACHE_SECONDS=60)
    first = scrape()
    enqueue("tests.record", "new")
    assert scrape().value("relay_jobs_enqueued_total") == first.value(
        "relay_jobs_enqueued_total")
    cache.clear()
    assert scrape().value("relay_jobs_enqueued_total") == first.value(
        "relay_jobs_enqueued_total") + 1


def test_a_database_error_is_a_503_not_a_500(db, relay, monkeypatch):
    def unreachable():
        raise OperationalError("could not connect to server at db.internal:5432")

    monkeypatch.setattr(snapshot, "take", unreachable)
    response = get()
    assert_refused(response, 503)
    assert b"db.internal" not in response.content
