"""/dashboard/ pages and actions. Actions are POST-only; see dashboard.views.base."""

from django.urls import path

from dashboard.views import (
    audit,
    bulk,
    failures,
    jobs,
    overview,
    queues,
    runs,
    schedules,
    workers,
    workflows,
)

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview, name="overview"),
    # jobs
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/<int:job_id>/", jobs.job_detail, name="job"),
    path("jobs/<int:job_id>/cancel/", jobs.cancel, name="job-cancel"),
    path("jobs/<int:job_id>/retry/", jobs.retry, name="job-retry"),
    path("jobs/<int:job_id>/discard/", jobs.discard, name="job-discard"),
    path("jobs/<int:job_id>/rerun/", jobs.rerun, name="job-rerun"),
    path("jobs/<int:job_id>/edit-retry/", jobs.edit_retry, name="job-edit-retry"),
    path("jobs/bulk/", bulk.bulk, name="jobs-bulk"),
    path("jobs/bulk/<int:operation_id>/", bulk.bulk_status, name="bulk-operation"),
    path("tasks/enqueue/", jobs.enqueue_form, name="task-enqueue"),
    # dead letters and failure groups
    path("dead-letters/", failures.dead_letters, name="dead-letters"),
    path("failures/", failures.groups, name="failures"),
    path("failures/retry/", failures.retry_group, name="failures-retry"),
    # workflows
    path("runs/", runs.run_list, name="runs"),
    path("runs/<int:run_id>/", runs.run_detail, name="run"),
    path("runs/<int:run_id>/cancel/", runs.cancel, name="run-cancel"),
    path("runs/<int:run_id>/rerun/", runs.rerun, name="run-rerun"),
    path("workflows/", workflows.definition_list, name="workflows"),
    path("workflows/<str:name>/", workflows.definition_detail, name="workflow"),
    path("workflows/<str:name>/diff/", workflows.diff, name="workflow-diff"),
    path("workflows/<str:name>/start/", workflows.start, name="workflow-start"),
    # schedules, queues, workers, audit
    path("schedules/", schedules.schedule_list, name="schedules"),
    path("schedules/<int:schedule_id>/pause/", schedules.pause, name="schedule-pause"),
    path("schedules/<int:schedule_id>/resume/", schedules.resume, name="schedule-resume"),
    path("schedules/<int:schedule_id>/trigger/", schedules.trigger, name="schedule-trigger"),
    path("queues/", queues.queue_list, name="queues"),
    path("queues/<str:queue>/pause/", queues.pause, name="queue-pause"),
    path("queues/<str:queue>/resume/", queues.resume, name="queue-resume"),
    path("workers/", workers.worker_list, name="workers"),
    path("audit/", audit.audit_log, name="audit"),
]
