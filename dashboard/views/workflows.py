"""Placeholder: being built."""

from django.http import Http404


def _todo(*args, **kwargs):
    raise Http404("not built yet")


definition_list = _todo
definition_detail = _todo
diff = _todo
start = _todo
