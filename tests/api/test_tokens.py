"""API tokens: created in the admin (shown once, stored hashed), used as a bearer token,
expired and revoked in the admin; and the per-user request rate."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from dashboard.models import ApiToken, AuditEntry

TOKEN = re.compile(r"relay_[0-9a-f]{12}_[A-Za-z0-9_\-]{43}")


@pytest.fixture
def superuser(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def create_in_admin(admin: Client, user: User, name: str = "ci") -> tuple[ApiToken, str]:
    page = admin.post("/admin/dashboard/apitoken/add/",
                      {"user": user.pk, "name": name, "expires_at_0": "", "expires_at_1": "",
                       "_save": "Save"})
    assert page.status_code == 200, page.content
    found = TOKEN.findall(page.content.decode())
    assert found, page.content
    return ApiToken.objects.get(name=name), found[0]


def test_a_token_is_shown_once_stored_hashed_and_works(superuser, all_users, world):
    operator = all_users["operator"]
    token, raw = create_in_admin(superuser, operator)
    assert token.user == operator and token.key_id in raw
    # Only a hash is kept: no column holds the secret.
    secret = raw.split("_", 2)[2]
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert not any(secret in str(value) for value in stored.values())
    assert token.secret_hash != secret and len(token.secret_hash) == 64
    # Nowhere else in the admin either.
    for path in (f"/admin/dashboard/apitoken/{token.pk}/change/", "/admin/dashboard/apitoken/"):
        page = superuser.get(path)
        assert page.status_code == 200 and secret not in page.content.decode()
    entry = AuditEntry.objects.get(action="api_token.create")
    assert (entry.actor, entry.source, entry.object_ids) == ("root", "admin", [str(token.pk)])
    assert secret not in str(entry.details)

    assert token.last_used_at is None
    response = bearer(raw).get("/api/v1/jobs/")
    assert response.status_code == 200 and response.json()["results"]
    token.refresh_from_db()
    assert token.last_used_at is not None
    # The same token with another secret is someone guessing.
    forged = bearer(raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB"))
    assert forged.get("/api/v1/jobs/").status_code == 401


def test_an_expired_token_is_refused(superuser, all_users, world):
    token, raw = create_in_admin(superuser, all_users["viewer"])
    assert bearer(raw).get("/api/v1/jobs/").status_code == 200
    past = timezone.localtime(timezone.now() - timedelta(minutes=5))
    changed = superuser.post(f"/admin/dashboard/apitoken/{token.pk}/change/", {
        "name": token.name, "expires_at_0": past.strftime("%Y-%m-%d"),
        "expires_at_1": past.strftime("%H:%M:%S"), "_save": "Save"})
    assert changed.status_code == 302, changed.content
    response = bearer(raw).get("/api/v1/jobs/")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("This API token expired at")
    assert AuditEntry.objects.filter(action="api_token.expiry").count() == 1


def test_a_token_is_revoked_by_the_admin_action_or_the_form(superuser, all_users, world):
    first, raw_first = create_in_admin(superuser, all_users["operator"], "first")
    second, raw_second = create_in_admin(superuser, all_users["operator"], "second")
    done = superuser.post("/admin/dashboard/apitoken/", {
        "action": "revoke_tokens", "_selected_action": [first.pk]})
    assert done.status_code == 302
    response = bearer(raw_first).get("/api/v1/jobs/")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("This API token was revoked at")
    assert bearer(raw_second).get("/api/v1/jobs/").status_code == 200

    superuser.post(f"/admin/dashboard/apitoken/{second.pk}/change/", {
        "name": "second", "expires_at_0": "", "expires_at_1": "", "revoke": "on",
        "_save": "Save"})
    assert bearer(raw_second).get("/api/v1/jobs/").status_code == 401
    revoked = AuditEntry.objects.filter(action="api_token.revoke")
    assert sorted(int(e.object_ids[0]) for e in revoked) == sorted([first.pk, second.pk])


def test_a_token_of_an_inactive_user_is_refused(all_users, world):
    _, raw = ApiToken.issue(all_users["admin"], "old")
    User.objects.filter(pk=all_users["admin"].pk).update(is_active=False)
    response = bearer(raw).get("/api/v1/jobs/")
    assert response.status_code == 401 and "inactive" in response.json()["detail"]


def test_staff_make_tokens_for_themselves_only(all_users, world):
    viewer = all_users["viewer"]  # is_staff, no superuser
    viewer.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="dashboard", codename__in=["add_apitoken", "view_apitoken",
                                                           "change_apitoken"]))
    own = ApiToken.issue(all_users["operator"], "someone else's")[0]
    client = Client()
    client.force_login(viewer)
    refused = client.post("/admin/dashboard/apitoken/add/", {
        "user": all_users["admin"].pk, "name": "escalate", "_save": "Save"})
    assert refused.status_code == 200 and b"Select a valid choice" in refused.content
    assert not ApiToken.objects.filter(name="escalate").exists()
    _, raw = create_in_admin(client, viewer, "mine")
    assert bearer(raw).get("/api/v1/jobs/").status_code == 200
    assert client.get(f"/admin/dashboard/apitoken/{own.pk}/change/").status_code == 302
    assert "someone" not in client.get("/admin/dashboard/apitoken/").content.decode()


def test_the_request_rate_is_limited_per_user(world, api_for):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "3/minute"}
    cache.clear()
    try:
        with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK,
                                               "DEFAULT_THROTTLE_RATES": rates}):
            viewer, operator = api_for("viewer"), api_for("operator")
            assert [viewer.get("/api/v1/workers/").status_code for _ in range(3)] == [200] * 3
            limited = viewer.get("/api/v1/workers/")
            assert limited.status_code == 429
            assert int(limited["Retry-After"]) > 0 and "throttled" in limited.json()["detail"]
            assert operator.get("/api/v1/workers/").status_code == 200  # another user
    finally:
        cache.clear()
