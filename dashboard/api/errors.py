"""Every refusal as JSON: the field and the problem for bad input, `detail` otherwise.

- dashboard.actions.ActionError: 400 naming its field when it has one (bad enqueue option,
  unknown workflow, invalid input), else 409 (the object's state does not allow it).
- dashboard.filters.FilterError (a list's query parameters): 400 naming the parameter.
- Django's PermissionDenied and Http404 keep their message (DRF would drop it).
- A path under /api/ that matches no route: 404 JSON too (`not_found`, the project's
  handler404).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from dashboard.actions import ActionError
from dashboard.filters import FilterError


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's state does not allow this."
    default_code = "conflict"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ActionError):
        if exc.field:
            exc = exceptions.ValidationError({exc.field: [str(exc)]})
        else:
            exc = Conflict(str(exc))
    elif isinstance(exc, FilterError):
        exc = exceptions.ValidationError({exc.field: [exc.message]})
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        # A bare list of messages: keep the documented shape, an object.
        response.data = {"non_field_errors": response.data}
    return response


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON for a path under /api/ that names no route, the usual page otherwise."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"No API route {request.path}"}, status=404)
    return page_not_found(request, exception)
