"""Workflow definition files: validation (one clear error per problem, naming file and path),
safety (registered tasks only, safe YAML, sandboxed expressions) and plan/apply (immutable
versions, only on content changes, all or nothing)."""

from __future__ import annotations

import json
import shutil
import zoneinfo
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from queues.registry import registry
from scheduler import firing
from scheduler.definitions import expressions, sync
from scheduler.definitions.errors import ExpressionError, InvalidDefinitions
from scheduler.definitions.loader import check_document, content_hash, load
from scheduler.models import Schedule, WorkflowDefinition

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "workflows"
VALID = FIXTURES / "valid"
INVALID = FIXTURES / "invalid"
# Where the payload in invalid/python_object_apply.yaml would write if it ever ran.
PAYLOAD_MARKER = Path("/tmp/relay-yaml-payload-executed")

# file in invalid/ -> (the path of its one error, words its message must contain)
INVALID_CASES: dict[str, tuple[str, str]] = {
    "bad_yaml_syntax.yaml": ("line 6, column 7", "invalid YAML: expected ',' or ']'"),
    "bad_json_syntax.json": (
        "line 4, column 42", "invalid JSON: Expecting property name enclosed in double quotes"),
    "python_object_apply.yaml": (
        "line 3, column 14",
        "could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system' (only plain YAML data is accepted; "
        "tags are refused)"),
    "unknown_key.yaml": ("steps[0]", "Additional properties are not allowed ('retries' was "
                                     "unexpected)"),
    "unknown_task.yaml": ("steps[1].task", "unknown task 'tests.does_not_exist': workflows may "
                                           "only name tasks registered with @task"),
    "os_system_task.yaml": ("steps[0].task", "unknown task 'os.system': workflows may only name "
                                             "tasks registered with @task"),
    "unknown_dependency.yaml": ("steps[1].needs[0]", "unknown step or group 'buidl'"),
    "unknown_group_dependency.yaml": ("steps[1].needs[1]", "unknown step or group 'chekout'"),
    "group_needs_own_step.yaml": (
        "steps[1].needs[1]", "group 'checks' cannot need itself or one of its own steps"),
    "cycle.yaml": ("steps[0].needs", "dependency cycle: a -> c -> b -> a"),
    "duplicate_id.yaml": ("steps[2].id", "duplicate id 'fetch' (step and group ids must be "
                                         "unique)"),
    "bad_cron.yaml": ("schedule.cron", "invalid cron expression '61 25 * * *'"),
    "bad_timezone.yaml": ("schedule.timezone", "unknown time zone 'Mars/Olympus_Mons'"),
    "bad_condition.yaml": ("steps[2].when",
                           "invalid expression \"steps.build.state == = 'success'\""),
    "condition_not_upstream.yaml": (
        "steps[2].when", "\"steps.lint.state == 'success'\" reads steps.lint, which does not run "
                         "before it (add it to needs)"),
    "condition_unknown_step.yaml": ("steps[1].when", "reads steps.fecth, which is not a step"),
    "reference_not_upstream.yaml": (
        "steps[1].input.url", "'steps.fetch.output.name' reads steps.fetch, which does not run "
                              "before it"),
    "unknown_function.yaml": ("steps[0].when", "unknown function '__import__'"),
    "open_in_input.yaml": ("steps[0].input.secret", "unknown function 'open'"),
    "underscore_attribute.yaml": ("steps[0].when", "attribute '__class__' is not allowed"),
    "bad_input_defaults.yaml": (
        "input.defaults.retries",
        "defaults do not match the input schema: 'many' is not of type 'integer'"),
    "bad_input_schema.yaml": ("input.schema.properties.count.type", "invalid JSON Schema: "
                                                                     "'whole-number'"),
}


@pytest.fixture(autouse=True)
def no_payload_marker():
    """A stale marker from an earlier (broken) run must not fail or pass a test."""
    PAYLOAD_MARKER.unlink(missing_ok=True)
    yield
    PAYLOAD_MARKER.unlink(missing_ok=True)


def same_file(label: str, path: Path) -> bool:
    return Path(label).resolve() == path.resolve()


def copy_valid(tmp_path: Path) -> Path:
    folder = tmp_path / "workflows"
    shutil.copytree(VALID, folder)
    return folder


def versions() -> list[tuple[str, int]]:
    return list(WorkflowDefinition.objects.order_by("name", "version")
                .values_list("name", "version"))


# -- every invalid file: one clear error, nothing stored ------------------------------------------

def test_the_invalid_fixture_table_covers_every_file_in_the_folder():
    files = {p.name for p in INVALID.iterdir() if p.is_file()}
    assert files == set(INVALID_CASES)


@pytest.mark.parametrize("name", sorted(INVALID_CASES))
def test_each_invalid_file_gives_one_error_naming_file_and_path_and_stores_nothing(name):
    path, words = INVALID_CASES[name]
    file = INVALID / name

    loaded, errors = load(file)

    assert loaded == []
    assert len(errors) == 1, [str(e) for e in errors]
    [error] = errors
    assert same_file(error.file, file)
    assert error.path == path
    assert words in error.message
    assert str(error) == f"{error.file}: {path}: {error.message}"

    with pytest.raises(InvalidDefinitions) as caught:
        sync.apply(file, created_by="test")
    assert caught.value.errors == errors
    assert WorkflowDefinition.objects.count() == 0
    assert Schedule.objects.count() == 0
    assert not PAYLOAD_MARKER.exists()


def test_applying_the_invalid_folder_reports_every_file_once_and_stores_nothing():
    result = sync.plan(INVALID)
    assert result.changes == []
    reported = {(Path(e.file).name, e.path) for e in result.errors}
    assert len(result.errors) == len(INVALID_CASES)
    assert reported == {(name, path) for name, (path, _) in INVALID_CASES.items()}

    with pytest.raises(InvalidDefinitions) as caught:
        sync.apply(INVALID, created_by="test")
    assert caught.value.errors == result.errors
    assert str(caught.value).startswith(f"{len(INVALID_CASES)} invalid workflow definition(s):")
    assert WorkflowDefinition.objects.count() == 0
    assert Schedule.objects.count() == 0
    assert not PAYLOAD_MARKER.exists()


def test_one_invalid_file_stops_the_valid_one_next_to_it_from_being_stored(tmp_path):
    folder = copy_valid(tmp_path)
    shutil.copy(INVALID / "cycle.yaml", folder / "cycle.yaml")

    with pytest.raises(InvalidDefinitions) as caught:
        sync.apply(folder, created_by="test")

    [error] = caught.value.errors
    assert same_file(error.file, folder / "cycle.yaml")
    assert error.path == "steps[0].needs"
    assert WorkflowDefinition.objects.count() == 0
    assert Schedule.objects.count() == 0  # not even the valid workflow's schedule


def test_a_pending_change_is_not_stored_while_another_file_is_invalid(tmp_path):
    folder = copy_valid(tmp_path)
    sync.apply(folder, created_by="test")
    report = folder / "report.json"
    report.write_text(report.read_text().replace('"name": "collect"}', '"name": "gather"}'))
    shutil.copy(INVALID / "bad_cron.yaml", folder / "bad_cron.yaml")

    with pytest.raises(InvalidDefinitions):
        sync.apply(folder, created_by="test")

    assert versions() == [("fixture-pipeline", 1), ("fixture-report", 1)]


def test_the_same_workflow_name_in_two_files_is_an_error_on_the_second():
    folder = FIXTURES / "duplicate_names"

    loaded, errors = load(folder)

    assert [item.name for item in loaded] == ["fixture-duplicate", "fixture-duplicate"]
    [error] = errors
    assert same_file(error.file, folder / "second.json")
    assert error.path == "name"
    assert error.message.startswith("workflow 'fixture-duplicate' is also defined in ")
    assert error.message.endswith("first.yaml")
    with pytest.raises(InvalidDefinitions):
        sync.apply(folder)
    assert WorkflowDefinition.objects.count() == 0


def test_a_missing_path_is_one_error():
    _, errors = load(FIXTURES / "no-such-folder")
    [error] = errors
    assert (error.path, error.message) == ("(path)", "no such file or folder")


# -- safety: registered tasks only, safe YAML, sandboxed expressions ----------------------------

@pytest.mark.parametrize("task", ["os.system", "subprocess.run", "builtins.eval",
                                  "tests.testapp.tasks._record", "queues.enqueue"])
def test_a_workflow_may_name_only_registered_tasks(task):
    assert task not in registry
    document = {"name": "t", "steps": [{"id": "a", "task": "tests.step"},
                                       {"id": "b", "task": task, "needs": ["a"]}]}

    [error] = check_document(document, "t.yaml")

    assert (error.file, error.path) == ("t.yaml", "steps[1].task")
    assert error.message.startswith(f"unknown task {task!r}")


def test_a_yaml_payload_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "payload-ran"
    text = (INVALID / "python_object_apply.yaml").read_text()
    assert str(PAYLOAD_MARKER) in text
    text = text.replace(str(PAYLOAD_MARKER), str(marker))
    # Control: an unsafe loader really would run the payload, so the marker proves something.
    yaml.unsafe_load(text)
    assert marker.exists()
    marker.unlink()

    file = tmp_path / "payload.yaml"
    file.write_text(text)
    _, errors = load(file)
    plan = sync.plan(tmp_path)
    with pytest.raises(InvalidDefinitions) as caught:
        sync.apply(tmp_path, created_by="test")

    assert not marker.exists()
    for found in (errors, plan.errors, caught.value.errors):
        [error] = found
        assert error.path == "line 3, column 14"
        assert "tags are refused" in error.message
    assert WorkflowDefinition.objects.count() == 0


@pytest.mark.parametrize("text, words", [
    ("__import__('os') == 1", "unknown function '__import__'"),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("input.items.pop()", "unknown function 'pop'"),
    ("input._private", "attribute '_private' is not allowed"),
    ("steps.a.output.__class__", "attribute '__class__' is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("os.getcwd", "unknown name 'os'"),
    ("input.x ==", "invalid expression"),
])
def test_expressions_refuse_anything_outside_the_sandbox(text, words):
    with pytest.raises(ExpressionError) as caught:
        expressions.parse(text)
    assert words in str(caught.value)


def test_evaluating_does_not_widen_the_documented_functions():
    documented = {"len", "str", "int", "float", "bool", "abs", "min", "max", "round", "sorted",
                  "any", "all", "lower", "upper"}
    assert expressions.evaluate("len(input.xs) + 1", {"input": {"xs": [1, 2]}}) == 3
    assert set(expressions.FUNCTIONS) == documented
    with pytest.raises(ExpressionError, match="unknown function 'list'"):
        expressions.parse("list(input)")


def test_dotted_access_reads_json_keys_even_when_they_are_dict_method_names():
    context = {"input": {"items": [1, 2], "keys": "k"},
               "steps": {"a": {"state": "success", "output": {"values": {"n": 3}}}}}

    assert expressions.evaluate("input.items", context) == [1, 2]
    assert expressions.condition("len(input.items) == 2", context) is True
    assert expressions.resolve({"v": "${{ steps.a.output.values.n * 2 }}",
                                "t": "${{ input.keys }}-${{ steps.a.state }}"},
                               context) == {"v": 6, "t": "k-success"}
    with pytest.raises(ExpressionError, match="Attribute 'missing' does not exist"):
        expressions.evaluate("input.missing", context)


# -- what valid files mean ---------------------------------------------------------------------

def test_valid_yaml_and_json_files_load_as_written():
    loaded, errors = load(VALID)

    assert errors == []
    assert [item.name for item in loaded] == ["fixture-pipeline", "fixture-report"]
    pipeline, report = loaded
    assert pipeline.spec == yaml.safe_load((VALID / "pipeline.yaml").read_text())
    assert report.spec == json.loads((VALID / "report.json").read_text())
    assert same_file(report.file, VALID / "report.json")


def test_a_step_needing_a_group_waits_for_every_member():
    [pipeline], _ = load(VALID / "pipeline.yaml")
    workflow = pipeline.workflow

    assert workflow.groups == {"checks": ["lint", "unit"]}
    assert workflow.needs_of == {"fetch": (), "lint": ("fetch",), "unit": ("fetch",),
                                 "publish": ("lint", "unit"), "notify": ("publish",)}
    assert workflow.ancestors("notify") == {"fetch", "lint", "unit", "publish"}
    # publish reads steps.lint through the group need; without it the same read is refused.
    document = yaml.safe_load((VALID / "pipeline.yaml").read_text())
    document["steps"][2]["needs"] = ["fetch"]
    errors = check_document(document, "p.yaml")
    assert [e.path for e in errors] == ["steps[2].when", "steps[2].input.lint"]
    assert all("reads steps.lint, which does not run before it" in e.message for e in errors)


# -- apply: versions only on content changes, immutable, idempotent ------------------------------

def test_apply_stores_version_1_of_each_workflow_and_its_schedule(tmp_path):
    folder = copy_valid(tmp_path)
    before = firing.now()

    result = sync.apply(folder, created_by="tester")

    assert [(c.name, c.action, c.new_version) for c in result.changes] == [
        ("fixture-pipeline", "add", 1), ("fixture-report", "add", 1)]
    assert versions() == [("fixture-pipeline", 1), ("fixture-report", 1)]
    for name, file in (("fixture-pipeline", "pipeline.yaml"), ("fixture-report", "report.json")):
        stored = WorkflowDefinition.objects.get(name=name)
        text = (folder / file).read_text()
        assert stored.source_text == text
        assert stored.spec == yaml.safe_load(text)
        assert stored.content_hash == content_hash(stored.spec)
        assert stored.created_by == "tester"
        assert same_file(stored.source_file, folder / file)
        assert stored.git_commit == ""  # tmp_path is not in a git repository

    [schedule] = Schedule.objects.all()
    assert schedule.name == "fixture-pipeline"
    assert (schedule.kind, schedule.cron, schedule.timezone) == ("cron", "30 2 * * *",
                                                                 "Europe/Berlin")
    assert (schedule.target_kind, schedule.target) == ("workflow", "fixture-pipeline")
    assert schedule.input == {"source": "nightly"}
    assert (schedule.overlap_policy, schedule.misfire_policy) == ("skip", "run_once")
    assert schedule.enabled is True
    assert same_file(schedule.source, folder / "pipeline.yaml")
    assert schedule.next_fire_at is not None
    local = schedule.next_fire_at.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute, local.second) == (2, 30, 0)
    assert before < schedule.next_fire_at <= before + timedelta(hours=25)


def test_an_interval_schedule_gets_its_next_aligned_time(tmp_path):
    (tmp_path / "ping.yaml").write_text(
        "name: ping\nschedule: {interval: 3600}\nsteps:\n  - {id: ping, task: tests.record}\n")
    before = firing.now()

    sync.apply(tmp_path)

    schedule = Schedule.objects.get(name="ping")
    assert (schedule.kind, schedule.interval, schedule.timezone) == ("interval", 3600, "UTC")
    assert schedule.next_fire_at.timestamp() % 3600 == 0
    assert before < schedule.next_fire_at <= before + timedelta(hours=1)


def test_applying_unchanged_files_again_creates_no_version(tmp_path):
    folder = copy_valid(tmp_path)
    sync.apply(folder, created_by="test")
    schedule = Schedule.objects.get()
    stored = {d.pk: (d.content_hash, d.source_text) for d in WorkflowDefinition.objects.all()}

    plan = sync.plan(folder)
    again = sync.apply(folder, created_by="test")

    for result in (plan, again):
        assert [(c.name, c.action, c.old_version) for c in result.changes] == [
            ("fixture-pipeline", "unchanged", 1), ("fixture-report", "unchanged", 1)]
        assert not result.has_changes
        assert result.render().splitlines() == [
            "  fixture-pipeline: unchanged (version 1)",
            "  fixture-report: unchanged (version 1)",
            "No changes.",
        ]
    assert {d.pk: (d.content_hash, d.source_text)
            for d in WorkflowDefinition.objects.all()} == stored
    assert Schedule.objects.get().next_fire_at == schedule.next_fire_at


def test_comment_order_and_formatting_changes_create_no_version(tmp_path):
    folder = copy_valid(tmp_path)
    sync.apply(folder, created_by="test")
    pipeline = folder / "pipeline.yaml"
    document = yaml.safe_load(pipeline.read_text())
    # Same content: other comments, sorted keys, block style, different quoting.
    pipeline.write_text("# Reformatted; no content change.\n"
                        + yaml.safe_dump(document, sort_keys=True, default_flow_style=False,
                                         default_style=None, width=60)
                        + "# trailing comment\n")
    report = folder / "report.json"
    report.write_text(json.dumps(json.loads(report.read_text()), indent=8, sort_keys=True))

    result = sync.apply(folder, created_by="test")

    assert [c.action for c in result.changes] == ["unchanged", "unchanged"]
    assert versions() == [("fixture-pipeline", 1), ("fixture-report", 1)]


def test_a_changed_file_creates_version_2_and_leaves_version_1_untouched(tmp_path):
    folder = copy_valid(tmp_path)
    sync.apply(folder, created_by="first")
    v1 = WorkflowDefinition.objects.get(name="fixture-report")
    original = (v1.pk, v1.spec, v1.content_hash, v1.source_text, v1.created_by, v1.created_at)
    report = folder / "report.json"
    report.write_text(report.read_text().replace(
        '"input": {"name": "collect"}', '"priority": 5, "input": {"name": "collect"}'))

    plan = sync.plan(folder)

    [unchanged, change] = plan.changes
    assert (unchanged.name, unchanged.action) == ("fixture-pipeline", "unchanged")
    assert (change.name, change.action, change.old_version, change.new_version) == (
        "fixture-report", "change", 1, 2)
    rendered = plan.render().splitlines()
    assert rendered[0] == "  fixture-pipeline: unchanged (version 1)"
    assert rendered[1].startswith("~ fixture-report: version 1 -> 2 (")
    assert rendered[1].endswith("report.json)")
    diff = rendered[2:]
    assert "    --- stored" in diff and "    +++ file" in diff
    assert "    +  priority: 5" in diff
    assert [line for line in diff if line.startswith(("    +  ", "    -  "))] == [
        "    +  priority: 5"]
    assert versions() == [("fixture-pipeline", 1), ("fixture-report", 1)]  # plan stores nothing

    result = sync.apply(folder, created_by="second")

    assert [(c.name, c.action) for c in result.changes] == [
        ("fixture-pipeline", "unchanged"), ("fixture-report", "change")]
    assert versions() == [("fixture-pipeline", 1), ("fixture-report", 1), ("fixture-report", 2)]
    v1.refresh_from_db()
    assert (v1.pk, v1.spec, v1.content_hash, v1.source_text, v1.created_by,
            v1.created_at) == original
    v2 = sync.latest_version("fixture-report")
    assert v2.version == 2
    assert v2.spec["steps"][0]["priority"] == 5
    assert v2.source_text == report.read_text()
    assert v2.created_by == "second"

    # Idempotent: the same files again store nothing new.
    assert not sync.apply(folder, created_by="third").has_changes
    assert WorkflowDefinition.objects.count() == 3


def test_a_stored_version_cannot_be_saved_again():
    [report], _ = load(VALID / "report.json")
    sync.apply(VALID / "report.json")
    stored = WorkflowDefinition.objects.get()

    stored.description = "rewritten"
    stored.spec = {"name": "fixture-report", "steps": []}
    with pytest.raises(ValueError, match="immutable"):
        stored.save()
    with pytest.raises(ValueError, match="immutable"):
        WorkflowDefinition.objects.get().save(update_fields=["description"])

    fresh = WorkflowDefinition.objects.get()
    assert fresh.description == "A JSON workflow: two steps in a line."
    assert fresh.spec == report.spec


# -- the management command ----------------------------------------------------------------------

def run_command(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("relay_workflows", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_command_plan_on_an_invalid_folder_lists_errors_and_fails():
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("relay_workflows", "plan", str(INVALID), stdout=out, stderr=err)

    assert str(caught.value) == (f"{len(INVALID_CASES)} invalid workflow definition(s); "
                                 f"nothing would be stored")
    lines = out.getvalue().splitlines()
    assert len(lines) == len(INVALID_CASES)
    assert any(line.endswith("invalid/cycle.yaml: steps[0].needs: dependency cycle: "
                             "a -> c -> b -> a") for line in lines)
    assert any("invalid/os_system_task.yaml: steps[0].task: unknown task 'os.system'" in line
               for line in lines)
    assert WorkflowDefinition.objects.count() == 0


def test_command_apply_on_an_invalid_folder_reports_on_stderr_and_stores_nothing():
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("relay_workflows", "apply", str(INVALID), stdout=out, stderr=err)

    assert str(caught.value) == (f"{len(INVALID_CASES)} invalid workflow definition(s); "
                                 f"nothing was stored")
    assert out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert len(lines) == len(INVALID_CASES)
    assert any(line.endswith("invalid/bad_cron.yaml: schedule.cron: invalid cron expression "
                             "'61 25 * * *': Bad minute") for line in lines)
    assert WorkflowDefinition.objects.count() == 0
    assert Schedule.objects.count() == 0


def test_command_plan_then_apply_on_a_valid_folder(tmp_path):
    folder = copy_valid(tmp_path)

    out, _ = run_command("plan", str(folder))
    lines = out.splitlines()
    assert lines[0].startswith("+ fixture-pipeline: new workflow, version 1 (")
    assert lines[1] == "    schedule: new: 30 2 * * * (Europe/Berlin)"
    assert lines[2].startswith("+ fixture-report: new workflow, version 1 (")
    assert len(lines) == 3
    assert WorkflowDefinition.objects.count() == 0  # plan stores nothing

    out, _ = run_command("apply", str(folder))
    assert out.splitlines()[-1] == "Applied: 2 new version(s), 0 unchanged."
    assert versions() == [("fixture-pipeline", 1), ("fixture-report", 1)]
    assert all(d.created_by.startswith("relay_workflows apply (")
               for d in WorkflowDefinition.objects.all())

    out, _ = run_command("apply", str(folder))
    assert out.splitlines()[-2:] == ["No changes.", "Applied: 0 new version(s), 2 unchanged."]
    assert WorkflowDefinition.objects.count() == 2


def test_duplicate_yaml_keys_are_refused_not_last_one_wins(db, tmp_path):
    (tmp_path / "dup.yaml").write_text(
        "name: dup\nsteps:\n  - id: a\n    task: tests.record\n"
        "    needs: []\n    when: 'true'\n    when: 'false'\n"
    )
    loaded, errors = load(tmp_path)
    assert loaded == []
    [error] = errors
    assert error.path == "line 7, column 5"
    assert "duplicate key 'when'" in error.message


def test_a_schedule_name_owned_by_something_else_is_a_clear_error(db, tmp_path):
    Schedule.objects.create(name="clash", kind="interval", interval=60, target_kind="task",
                            target="tests.record")
    (tmp_path / "clash.yaml").write_text(
        "name: clash\nschedule: {interval: 60}\nsteps:\n  - id: a\n    task: tests.record\n")
    with pytest.raises(InvalidDefinitions) as caught:
        sync.apply(tmp_path)
    [error] = caught.value.errors
    assert error.path == "schedule" and "already exists for task 'tests.record'" in error.message
    assert not WorkflowDefinition.objects.exists()


def test_enabled_in_the_file_wins_only_when_the_file_changes_it(db, tmp_path):
    path = tmp_path / "toggle.yaml"
    body = "name: toggle\nschedule: {{interval: 60, enabled: {enabled}}}\nsteps:\n" \
           "  - id: a\n    task: tests.record\n"
    path.write_text(body.format(enabled="true"))
    sync.apply(tmp_path)
    assert Schedule.objects.get(name="toggle").enabled
    Schedule.objects.filter(name="toggle").update(enabled=False)  # an operator pauses it
    path.write_text(body.format(enabled="true") + "description: unrelated change\n")
    sync.apply(tmp_path)
    assert not Schedule.objects.get(name="toggle").enabled  # the pause survives
    path.write_text(body.format(enabled="false"))
    plan = sync.plan(tmp_path)
    assert plan.changes[0].schedule == ""  # already disabled: nothing to do
    sync.apply(tmp_path)
    Schedule.objects.filter(name="toggle").update(enabled=True)
    path.write_text(body.format(enabled="true"))
    sync.apply(tmp_path)
    path.write_text(body.format(enabled="false"))
    assert "disable" in sync.plan(tmp_path).changes[0].schedule
    sync.apply(tmp_path)
    assert not Schedule.objects.get(name="toggle").enabled  # the file turned it off
