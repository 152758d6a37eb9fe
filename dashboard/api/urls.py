"""/api/v1/ routes (included from relay_project.urls, with /api/schema/ and /api/docs/)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from dashboard.api import dead_letters, executions, jobs, runs, schedules, workers, workflows

router = SimpleRouter()
router.register("jobs", jobs.JobViewSet, basename="job")
router.register("executions", executions.ExecutionViewSet, basename="execution")
router.register("dead-letters", dead_letters.DeadLetterViewSet, basename="dead-letter")
router.register("workflows", workflows.WorkflowViewSet, basename="workflow")
router.register("runs", runs.RunViewSet, basename="run")
router.register("schedules", schedules.ScheduleViewSet, basename="schedule")
router.register("workers", workers.WorkerViewSet, basename="worker")

app_name = "api"

urlpatterns = [path("", include(router.urls))]
