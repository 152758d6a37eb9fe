"""Keyset ("cursor") paging for the large lists: jobs, executions, dead letters, runs, workers.

A page is the rows after (or before) an anchor row in the list's order, which always ends in
the id, so (value, id) orders rows totally: page 10,000 costs what page 1 costs, a row added
meanwhile is never shown twice, and nothing counts the whole table. The cursor is opaque to
clients: follow `next` and `previous`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.db.models import Q, QuerySet, Subquery
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

MAX_ID = 2**63 - 1


class KeysetPagination(BasePagination):
    page_size = 50
    max_page_size = 200
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def paginate_queryset(self, queryset: QuerySet, request: Any,
                          view: Any = None) -> list[Any]:
        self.request = request
        order = list(queryset.query.order_by) or ["-id"]
        if order[-1].lstrip("-") not in ("id", "pk"):
            order.append("-id")
        size = self._page_size(request)
        direction, anchor = self._decode(request)
        qs = queryset.order_by(*order)
        if anchor is not None:
            qs = qs.filter(self._beyond(queryset.model, order, direction, anchor))
        if direction == "before":
            qs = qs.order_by(*[o[1:] if o.startswith("-") else f"-{o}" for o in order])
        rows = list(qs[: size + 1])
        more = len(rows) > size
        rows = rows[:size]
        if direction == "before":
            rows.reverse()
        self.next_cursor = self.previous_cursor = None
        if rows:
            if more or direction == "before":
                self.next_cursor = self._encode("after", rows[-1].pk)
            if direction == "after" or (direction == "before" and more):
                self.previous_cursor = self._encode("before", rows[0].pk)
        return rows

    @staticmethod
    def _beyond(model: Any, order: list[str], direction: str, anchor: int) -> Q:
        first = order[0]
        field = first.lstrip("-")
        descending = first.startswith("-")
        op = "lt" if descending == (direction == "after") else "gt"
        if field in ("id", "pk"):
            return Q(**{f"id__{op}": anchor})
        # The anchor's value as stored, compared in the database (see the dashboard's list).
        value = Subquery(model.objects.filter(pk=anchor).values(field)[:1])
        return Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"id__{op}": anchor})

    def _page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw in (None, ""):
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: [
                f"A whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    def _decode(self, request: Any) -> tuple[str, int | None]:
        raw = request.query_params.get(self.cursor_query_param)
        if not raw:
            return "", None
        try:
            text = base64.urlsafe_b64decode(raw.encode("ascii") + b"==").decode("ascii")
            direction, _, value = text.partition(":")
            anchor = int(value)
        except (ValueError, UnicodeError, binascii.Error):
            direction, anchor = "", -1
        if direction not in ("after", "before") or not 0 <= anchor <= MAX_ID:
            raise ValidationError({self.cursor_query_param: [
                "Invalid cursor: use the next or previous link of a page."]})
        return direction, anchor

    @staticmethod
    def _encode(direction: str, anchor: int) -> str:
        return base64.urlsafe_b64encode(f"{direction}:{anchor}".encode()).decode().rstrip("=")

    def _link(self, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, cursor)

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self._link(self.next_cursor),
                         "previous": self._link(self.previous_cursor), "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {**link, "description": "The next page; null on the last."},
                "previous": {**link, "description": "The previous page; null on the first."},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {"name": self.cursor_query_param, "required": False, "in": "query",
             "description": "Where the page starts: from a `next` or `previous` link.",
             "schema": {"type": "string"}},
            {"name": self.page_size_query_param, "required": False, "in": "query",
             "description": f"Rows per page (default {self.page_size}).",
             "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size}},
        ]
