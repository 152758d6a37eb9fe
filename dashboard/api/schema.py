"""The OpenAPI schema: every operation documents the errors it can answer with, so clients
(and the schemathesis run in the test suite) can rely on the documented status codes.

Errors are JSON: `{"detail": "..."}`, or for invalid input an object naming each field and
its problems, e.g. `{"priority": ["Ensure this value is less than or equal to 100."]}`.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from dashboard.api.base import MAX_ID

ERROR = OpenApiResponse(
    inline_serializer("Error", {"detail": serializers.CharField()}),
    description="What went wrong.")
INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="Invalid input: each field at fault with a list of its problems "
                "(`non_field_errors` for the request as a whole, `detail` for unreadable JSON).")

ERRORS = {
    "400": INVALID,
    "401": OpenApiResponse(ERROR.response, description="No credentials, or an invalid, "
                                                       "expired or revoked token."),
    "403": OpenApiResponse(ERROR.response, description="Your role does not allow this."),
    "404": OpenApiResponse(ERROR.response, description="No such object (or not visible "
                                                       "to you)."),
    "409": OpenApiResponse(ERROR.response, description="The object's state does not allow "
                                                       "this (nothing changed)."),
    "429": OpenApiResponse(ERROR.response, description="Too many requests; retry after "
                                                       "the Retry-After header's seconds."),
}


class RelayAutoSchema(AutoSchema):
    def _resolve_path_parameters(self, variables: list[str]) -> list[dict[str, Any]]:
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if parameter["name"] == "id":  # see dashboard.api.base.ID
                parameter["schema"] = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
        return parameters

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        codes = ["401", "403", "429"]
        if self.method != "GET" or self._is_list_view():
            codes.append("400")
        if "{" in self.path:
            codes.append("404")
        if self.method == "POST":
            codes.append("409")
        for code in sorted(codes):
            if code not in responses:
                responses[code] = self._get_response_for_code(ERRORS[code], code,
                                                              direction=direction)
        return responses


def only_api_v1(endpoints: list[tuple]) -> list[tuple]:
    """The schema describes the versioned API, not the schema and docs views themselves."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/v1/")]
