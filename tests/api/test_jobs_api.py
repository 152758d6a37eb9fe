"""Jobs through the API: enqueue with every option, dedup (201 new, 200 existing), errors
that name the field, the dashboard's filters, keyset pages, masked secrets; and the errors
of the other endpoints (wrong state: 409, bad input: 400 naming the field)."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboard.masking import MASK
from dashboard.models import AuditEntry
from queues import enqueue
from queues.models import Job


def test_enqueue_takes_every_option_of_the_python_api(world, api_for):
    body = {
        "task": "tests.record", "args": [], "kwargs": {"key": "full"}, "queue": "reports",
        "priority": 7, "run_at": "2030-01-02T03:04:05+02:00", "dedup_key": "full-1",
        "max_attempts": None, "timeout": 12.5, "ack_timeout": 60, "tags": ["nightly", "api"],
        "meta": {"ticket": "OPS-1"}, "backoff": {"base": 2, "cap": 30},
        "reason": "backfill",
    }
    response = api_for("operator").post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    job = Job.objects.get(pk=data["id"])
    assert (job.task, job.queue, job.priority, job.dedup_key, job.max_attempts, job.timeout,
            job.ack_timeout, job.tags, job.kwargs) == (
        "tests.record", "reports", 7, "full-1", None, 12.5, 60.0, ["nightly", "api"],
        {"key": "full"})
    assert job.run_at == datetime(2030, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert job.meta == {"ticket": "OPS-1", "triggered_by": "operator"}
    assert job.backoff["base"] == 2 and job.backoff["cap"] == 30
    assert data["deduplicated"] is False and data["state"] == "scheduled"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.reason, entry.object_ids) == (
        "task.enqueue", "api", "backfill", [str(job.pk)])
    assert entry.details["options"]["priority"] == 7


def test_enqueue_with_an_active_dedup_key_returns_the_existing_job_with_200(world, api_for):
    client = api_for("operator")
    body = {"task": "tests.record", "kwargs": {"key": "once"}, "dedup_key": "nightly-42"}
    first = client.post("/api/v1/jobs/", body, format="json")
    second = client.post("/api/v1/jobs/", {**body, "kwargs": {"key": "twice"}}, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["deduplicated"] is True
    assert second.json()["kwargs"] == {"key": "once"}
    assert Job.objects.filter(dedup_key="nightly-42").count() == 1
    # Nothing changed the second time: one audit entry.
    assert AuditEntry.objects.filter(action="task.enqueue").count() == 1
    # Once that job has ended, the key enqueues a new job again.
    Job.objects.filter(pk=first.json()["id"]).update(state="cancelled",
                                                     finished_at=datetime.now(UTC))
    third = client.post("/api/v1/jobs/", body, format="json")
    assert third.status_code == 201 and third.json()["id"] != first.json()["id"]


def test_enqueue_errors_name_the_field(world, api_for):
    client = api_for("operator")
    base = {"task": "tests.record"}
    cases = [
        ({"task": "no.such.task"}, "task", "registered"),
        ({**base, "priority": 500}, "priority", "100"),
        ({**base, "queue": "bad queue!"}, "queue", "letters"),
        ({**base, "run_at": "2030-01-02T03:04:05"}, "run_at", "UTC offset"),
        ({**base, "run_at": "2030-01-02T03:04:05Z", "delay": 5}, "delay", "not both"),
        ({**base, "delay": -1}, "delay", "greater than or equal"),
        ({**base, "max_attempts": 0}, "max_attempts", "greater than or equal"),
        ({**base, "timeout": 0}, "timeout", "greater than or equal"),
        ({**base, "dedup_key": ""}, "dedup_key", "blank"),
        ({**base, "tags": [""]}, "tags", "blank"),
        ({**base, "kwargs": ["not", "an", "object"]}, "kwargs", "JSON object"),
        ({**base, "args": {"not": "a list"}}, "args", "JSON list"),
        ({**base, "kwargs": {"nope": 1}}, "kwargs", "does not accept"),
        ({**base, "kwargs": {"queue": "x"}}, "kwargs", "enqueue options"),
        ({**base, "kwargs": {"key": "a\x00b"}}, "kwargs", "NUL"),
        ({**base, "meta": {"workflow_run": 1}}, "meta", "set by Relay"),
        ({**base, "backoff": {"factor": 0.5}}, "backoff", ""),
        ({**base, "reason": "x" * 2001}, "reason", "2000"),
    ]
    for body, field, words in cases:
        response = client.post("/api/v1/jobs/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        errors = response.json()
        assert field in errors, (body, errors)
        assert words in str(errors[field]), (body, errors)
    assert not Job.objects.filter(task="tests.record", meta__triggered_by="operator").exists()
    assert not AuditEntry.objects.exists()
    broken = client.post("/api/v1/jobs/", "{not json", content_type="application/json")
    assert broken.status_code == 400 and "JSON parse error" in broken.json()["detail"]
    listed = client.post("/api/v1/jobs/", [1, 2], format="json")
    assert listed.status_code == 400 and "non_field_errors" in listed.json()


def test_the_list_takes_the_dashboards_filters(world, api_for):
    client = api_for("viewer")
    enqueue("tests.record", key="a", queue="reports", tags=["nightly"], customer_id=42)
    enqueue("tests.record", key="b", queue="reports", customer_id=7)

    def ids(query: str) -> set[int]:
        response = client.get(f"/api/v1/jobs/?{query}")
        assert response.status_code == 200, response.content
        return {j["id"] for j in response.json()["results"]}

    reports = set(Job.objects.filter(queue="reports").values_list("id", flat=True))
    assert ids("queue=reports") == reports
    dead = set(Job.objects.filter(state="dead_letter").values_list("id", flat=True))
    assert {world.dead.pk, world.team_dead.pk} <= dead
    assert ids("state=dead_letter") == dead
    assert ids("state=dead_letter&queue=team-a") == {world.team_dead.pk}
    assert ids("tag=nightly") == set(Job.objects.filter(kwargs__key="a").values_list("id",
                                                                                       flat=True))
    assert ids("arg=args.customer_id=42") == ids("tag=nightly")
    assert ids("q=disk+full") == {world.dead.pk}
    assert ids(f"q=%23{world.done.pk}") == {world.done.pk}
    assert ids("since=1h") >= reports
    assert ids("worker=%C2%B3&q=%23%C2%B3") == set()  # "³" is a digit to str, not an id
    for query, field in (("state=exploded", "state"), ("since=yesterday-ish", "since"),
                         ("arg=args.api_key=x", "arg"), ("sort=-priority", "sort"),
                         ("cursor=garbage", "cursor"), ("page_size=0", "page_size"),
                         ("q=a%00b", "q")):
        response = client.get(f"/api/v1/jobs/?{query}")
        assert response.status_code == 400, query
        assert field in response.json(), (query, response.json())


def test_cursor_pages_walk_every_job_once_both_ways(world, api_for):
    client = api_for("viewer")
    for i in range(9):
        enqueue("tests.record", key=str(i), queue="paging", priority=i % 3, delay=60)
    expected = list(Job.objects.filter(queue="paging").order_by("-id").values_list("id",
                                                                                    flat=True))
    for query, order in (("", expected),
                         ("&state=scheduled&sort=-priority",
                          list(Job.objects.filter(queue="paging")
                               .order_by("-priority", "-id").values_list("id", flat=True)))):
        url = f"/api/v1/jobs/?queue=paging&page_size=4{query}"
        seen, pages = [], []
        while url:
            page = client.get(url).json()
            assert len(page["results"]) <= 4
            pages.append(url)
            seen += [j["id"] for j in page["results"]]
            url = page["next"]
        assert seen == order and len(pages) == 3, query
        # And back from the last page with `previous`.
        last = client.get(pages[-1]).json()
        back = [j["id"] for j in last["results"]]
        url = last["previous"]
        while url:
            page = client.get(url).json()
            back = [j["id"] for j in page["results"]] + back
            url = page["previous"]
        assert back == order, query


def test_secret_arguments_are_masked_as_in_the_dashboard(world, api_for):
    client = api_for("admin")
    detail = client.get(f"/api/v1/jobs/{world.done.pk}/").json()
    assert detail["kwargs"]["api_key"] == MASK
    for path in (f"/api/v1/jobs/{world.done.pk}/", "/api/v1/jobs/?task=tests.record",
                 "/api/v1/executions/"):
        assert "s3cret-value" not in client.get(path).content.decode(), path
    response = client.post("/api/v1/jobs/", {"task": "tests.step", "kwargs": {
        "name": "x", "password": "hunter2", "nested": {"api_token": "t0ken"}}}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["kwargs"] == {"name": "x", "password": MASK,
                                         "nested": {"api_token": MASK}}
    job = Job.objects.get(pk=response.json()["id"])
    assert job.kwargs["password"] == "hunter2"  # stored as given: the handler needs it
    details = str(AuditEntry.objects.get(action="task.enqueue").details)
    assert "hunter2" not in details and "t0ken" not in details


def test_refusals_of_the_other_endpoints(world, api_for):
    client = api_for("operator")
    finished = client.post(f"/api/v1/jobs/{world.done.pk}/cancel/", {}, format="json")
    assert finished.status_code == 409 and "success" in finished.json()["detail"]
    assert client.post(f"/api/v1/jobs/{world.waiting.pk}/retry/", {},
                       format="json").status_code == 409
    letter = world.dead.dead_letters.get().pk
    assert client.post(f"/api/v1/dead-letters/{letter}/discard/", {},
                       format="json").status_code == 200
    again = client.post(f"/api/v1/dead-letters/{letter}/retry/", {}, format="json")
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    assert client.post(f"/api/v1/runs/{world.run.pk}/rerun/", {},
                       format="json").status_code == 409
    assert client.post(f"/api/v1/schedules/{world.schedule.pk}/resume/", {},
                       format="json").status_code == 409
    unknown = client.post("/api/v1/runs/", {"workflow": "nope"}, format="json")
    assert unknown.status_code == 400 and "nope" in unknown.json()["workflow"][0]
    invalid = client.post("/api/v1/runs/", {"workflow": "other-flow", "input": {"source": ""}},
                          format="json")
    assert invalid.status_code == 400 and "source" in invalid.json()["input"][0]
    assert client.get("/api/v1/jobs/999999/").status_code == 404
    assert client.post("/api/v1/jobs/999999/cancel/", {}, format="json").status_code == 404
    assert client.get("/api/v1/workflows/nope/versions/").status_code == 404
    assert client.post(f"/api/v1/jobs/{world.waiting.pk}/cancel/", {"reason": 5},
                       format="json").status_code == 200  # a number is read as text
    assert not AuditEntry.objects.filter(action__in=["run.rerun", "schedule.resume"]).exists()


def test_a_dedup_key_held_by_a_hidden_job_is_a_conflict(world, api_for):
    """A scoped operator who sees only team-a work learns nothing about another team's job
    holding the same dedup key: 409, and nothing enqueued or recorded."""
    from dashboard.models import RoleScope

    RoleScope.objects.filter(group__name="Team A operators").update(others="hidden")
    other = enqueue("tests.record", key="other team", dedup_key="shared-key", delay=60)
    response = api_for("scoped").post("/api/v1/jobs/", {
        "task": "tests.record", "queue": "team-a", "dedup_key": "shared-key"}, format="json")
    assert response.status_code == 409
    assert str(other.pk) not in response.content.decode()
    assert Job.objects.filter(dedup_key="shared-key").count() == 1
    assert not AuditEntry.objects.exists()
