"""What every dashboard view shares: access checks, POST-only actions, paging, responses.

Pages: `@page` -- login required (anonymous users are sent to the login page), and the
viewer permission (403 otherwise). Actions: `@action` -- POST only (405 for GET), login and
viewer permission; the action function itself checks the specific permission through
`dashboard.actions` (403 on PermissionDenied). CSRF is checked by Django's middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlparse

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from dashboard.access import Access, access_for
from dashboard.actions import ActionError, Actor, actor_from_request

PAGE_SIZE = 50


def page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not access_for(request).can_view:
            raise PermissionDenied("You have no Relay role")
        return view(request, *args, **kwargs)

    return wrapped


def action(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`view(request, actor, *args)` performs the action and returns a response (usually
    `done(request, ...)`); ActionError becomes an error message and a redirect back."""
    @require_POST
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            raise PermissionDenied("Log in first")
        if not access_for(request).can_view:
            raise PermissionDenied("You have no Relay role")
        try:
            return view(request, actor_from_request(request), *args, **kwargs)
        except ActionError as exc:
            messages.error(request, str(exc))
            return back(request)

    return wrapped


def reason(request: HttpRequest) -> str:
    return request.POST.get("reason", "").strip()[:2000]


def back(request: HttpRequest, fallback: str = "dashboard:overview") -> HttpResponse:
    """Redirect to `next` (same-site paths only) or the referring dashboard page."""
    from django.urls import reverse

    target = request.POST.get("next") or request.GET.get("next") or ""
    if not target.startswith("/") or target.startswith("//"):
        referer = urlparse(request.META.get("HTTP_REFERER", ""))
        target = referer.path + (f"?{referer.query}" if referer.query else "")
        if not target.startswith("/dashboard/"):
            target = reverse(fallback)
    response = HttpResponseRedirect(target)
    if getattr(request, "htmx", False):
        # htmx follows redirects itself; tell it to load the page, not swap a fragment.
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
    return response


def done(request: HttpRequest, message: str, fallback: str = "dashboard:overview") -> HttpResponse:
    messages.success(request, message)
    return back(request, fallback)


def render_page(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    context.setdefault("access", access_for(request))
    return render(request, template, context)


__all__ = ["PAGE_SIZE", "Access", "ActionError", "Actor", "action", "back", "done", "page",
           "reason", "render_page"]
