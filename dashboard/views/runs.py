"""Placeholder: being built."""

from django.http import Http404


def _todo(*args, **kwargs):
    raise Http404("not built yet")


run_list = _todo
run_detail = _todo
cancel = _todo
rerun = _todo
