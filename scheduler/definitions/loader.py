"""Reading workflow files: YAML (safe loader only) or JSON, one workflow per file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from scheduler.definitions.errors import DefinitionError, format_path
from scheduler.definitions.schema import WORKFLOW
from scheduler.definitions.workflow import Workflow

SUFFIXES = (".yaml", ".yml", ".json")


class _StrictSafeLoader(yaml.SafeLoader):
    """yaml's SafeLoader (plain data only), refusing duplicate keys: a second `needs:` or
    `when:` in one step must not silently replace the first."""

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # SafeLoader itself refuses unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
_validator = Draft202012Validator(WORKFLOW)


@dataclass(frozen=True)
class LoadedWorkflow:
    workflow: Workflow
    file: str  # as given on the command line, relative when possible
    source_text: str

    @property
    def name(self) -> str:
        return self.workflow.name

    @property
    def spec(self) -> dict[str, Any]:
        return self.workflow.spec

    @property
    def content_hash(self) -> str:
        return content_hash(self.spec)


def content_hash(spec: dict[str, Any]) -> str:
    """Comments, key order and formatting do not change a definition; content does."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def workflow_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def load(path: str | Path) -> tuple[list[LoadedWorkflow], list[DefinitionError]]:
    """Every workflow under `path` (a folder or one file), and every error found. Callers
    store nothing unless the error list is empty."""
    root = Path(path)
    if not root.exists():
        return [], [DefinitionError(str(path), "(path)", "no such file or folder")]
    loaded: list[LoadedWorkflow] = []
    errors: list[DefinitionError] = []
    for file in workflow_files(root):
        label = _label(file)
        result = load_file(file, label)
        if isinstance(result, LoadedWorkflow):
            loaded.append(result)
        else:
            errors.extend(result)
    seen: dict[str, str] = {}
    for item in loaded:
        if item.name in seen:
            errors.append(DefinitionError(item.file, "name", f"workflow {item.name!r} is also "
                                          f"defined in {seen[item.name]}"))
        seen.setdefault(item.name, item.file)
    return loaded, errors


def load_file(file: Path, label: str | None = None) -> LoadedWorkflow | list[DefinitionError]:
    label = label or str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [DefinitionError(label, "(file)", f"cannot read: {exc}")]
    document = parse_text(text, label, json_format=file.suffix == ".json")
    if isinstance(document, list):
        return document
    return check_document(document, label, text)


def parse_text(text: str, label: str, *, json_format: bool) -> Any:
    if json_format:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            return [DefinitionError(label, f"line {exc.lineno}, column {exc.colno}",
                                    f"invalid JSON: {exc.msg}")]
    try:
        # A SafeLoader builds only plain data: a `!!python/...` tag is an error, never a call.
        document = yaml.load(text, Loader=_StrictSafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        if "constructor" in str(problem) or "tag" in str(problem):
            problem = f"{problem} (only plain YAML data is accepted; tags are refused)"
        return [DefinitionError(label, where, f"invalid YAML: {problem}")]
    try:
        json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return [DefinitionError(label, "(file)", f"values must be plain JSON data (quote dates "
                                f"and times): {exc}")]
    return document


def check_document(document: Any, label: str, text: str = "") -> LoadedWorkflow | list[
        DefinitionError]:
    if not isinstance(document, dict):
        return [DefinitionError(label, "(top level)", "a workflow file must hold one mapping "
                                "(name, steps, ...)")]
    error = best_match(_validator.iter_errors(document))
    if error is not None:
        return [DefinitionError(label, format_path(list(error.absolute_path)),
                                _schema_message(error))]
    workflow = Workflow(document)
    problems = workflow.check(label)
    if problems:
        return problems
    return LoadedWorkflow(workflow=workflow, file=label, source_text=text)


def _schema_message(error) -> str:
    if error.validator == "additionalProperties":
        return f"{error.message} (see the workflow format in README.md)"
    return error.message


def _label(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(file)
