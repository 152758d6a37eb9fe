"""Placeholder: being built."""

from django.http import Http404


def _todo(*args, **kwargs):
    raise Http404("not built yet")


job_list = _todo
job_detail = _todo
cancel = _todo
retry = _todo
discard = _todo
rerun = _todo
edit_retry = _todo
enqueue_form = _todo
