"""Validation errors that name the file and the place inside it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def format_path(path: Sequence[str | int]) -> str:
    """["steps", 2, "needs", 0] -> "steps[2].needs[0]"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


@dataclass(frozen=True)
class DefinitionError:
    file: str
    path: str  # "steps[2].needs[0]", or "line 4, column 3" for syntax errors
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}"


class InvalidDefinitions(Exception):
    """Raised by apply(): nothing was stored. `errors` lists every problem found."""

    def __init__(self, errors: Iterable[DefinitionError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  {error}" for error in self.errors)
        super().__init__(f"{len(self.errors)} invalid workflow definition(s):\n{lines}")


class ExpressionError(ValueError):
    """A condition or input reference that cannot be parsed or evaluated."""
