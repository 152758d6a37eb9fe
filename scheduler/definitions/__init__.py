"""Workflow definitions: the file format, its validation, and applying files as versions.

- `schema`: the JSON Schema every file must match.
- `expressions`: `when` conditions and `${{ }}` input references, evaluated by simpleeval.
- `workflow`: `Workflow`, the checked graph of one definition (steps, groups, needs).
- `loader`: reading a folder of YAML/JSON files into workflows or `DefinitionError`s.
- `sync`: `plan()` and `apply()`, which store a new version only when content changed.
"""

from scheduler.definitions.errors import DefinitionError, InvalidDefinitions
from scheduler.definitions.workflow import Step, Workflow

__all__ = ["DefinitionError", "InvalidDefinitions", "Step", "Workflow"]
