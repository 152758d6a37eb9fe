"""Users in every role, and logged-in clients for them.

Roles come from the data migration (groups "Relay viewer", "Relay operator", "Relay admin");
`scoped` is an operator limited to queue "team-a" and workflow "team-a-flow", who sees other
work read-only.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from dashboard.models import RoleScope
from dashboard.roles import ADMIN, OPERATOR, VIEWER

ROLES = ("anonymous", "viewer", "operator", "admin", "scoped")


@pytest.fixture
def users(db) -> dict[str, User | None]:
    made: dict[str, User | None] = {"anonymous": None}
    for role, group in (("viewer", VIEWER), ("operator", OPERATOR), ("admin", ADMIN)):
        user = User.objects.create_user(role, password="pw", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        made[role] = user
    team = Group.objects.create(name="Team A operators")
    team.permissions.set(Group.objects.get(name=OPERATOR).permissions.all())
    RoleScope.objects.create(group=team, queues=["team-a"], workflows=["team-a-flow"],
                             others=RoleScope.Others.READ)
    scoped = User.objects.create_user("scoped", password="pw", is_staff=True)
    scoped.groups.add(team)
    made["scoped"] = scoped
    return made


@pytest.fixture
def client_for(users):
    """client_for("operator") -> a Client logged in as that role (anonymous: not logged in).
    CSRF checks are on, as in a browser; use `csrf_post` to send the token."""
    def make(role: str) -> Client:
        client = Client(enforce_csrf_checks=True)
        if users[role] is not None:
            client.force_login(users[role])
        return client

    return make


def csrf_post(client: Client, path: str, data: dict | None = None, **extra):
    """POST with the CSRF token a page would have embedded."""
    client.get("/accounts/login/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    return client.post(path, data or {}, HTTP_X_CSRFTOKEN=token, **extra)
