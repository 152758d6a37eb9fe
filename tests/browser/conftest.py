"""Browser tests: Debian's chromium driven by Playwright against pytest-django's live server.

The live server is a thread of the test process serving the real test database (a file for
SQLite, so worker subprocesses share it too); every test is transactional, so what the test
writes the server sees and the other way round. Users log in through the real login page.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth.models import Group, User

from dashboard.roles import ADMIN, OPERATOR, VIEWER, sync_roles

CHROMIUM = os.environ.get("RELAY_CHROMIUM", "/usr/bin/chromium")
ROLE_GROUPS = {"viewer": VIEWER, "operator": OPERATOR, "admin": ADMIN}
PASSWORD = "browser-pw"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One chromium per test module. Playwright's sync API keeps an asyncio loop running in
    this thread, which Django's async-safety check would mistake for async code calling the
    ORM: the tests are plain sync code, so the check is off while the browser is up."""
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} is not installed (`make browser` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def roles(transactional_db) -> None:
    """The groups of the data migration: a transactional test flushes them after every test,
    so they are made again (the same function `migrate` runs)."""
    sync_roles()


@pytest.fixture
def make_user(roles) -> Callable[[str], User]:
    def make(role: str, username: str | None = None) -> User:
        user = User.objects.create_user(username or role, password=PASSWORD)
        user.groups.add(Group.objects.get(name=ROLE_GROUPS[role]))
        return user

    return make


@pytest.fixture
def login(browser, live_server, make_user) -> Iterator[Callable]:
    """login("operator") -> a Playwright page logged in as a new user in that role (named
    after it unless `username` is given), through the login form. Confirmation dialogs
    (`data-confirm`) are accepted."""
    from playwright.sync_api import expect

    contexts = []

    def open_as(role: str, username: str | None = None):
        user = make_user(role, username)
        context = browser.new_context(base_url=live_server.url,
                                      viewport={"width": 1400, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto("/accounts/login/?next=/dashboard/queues/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("header .user")).to_have_text(user.username)
        return page

    yield open_as
    for context in contexts:
        context.close()
