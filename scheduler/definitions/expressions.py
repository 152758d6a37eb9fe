"""Conditions (`when:`) and input references (`${{ steps.build.output.url }}`).

Evaluated by simpleeval, never `eval`: only literals, names of the context (`input`, `steps`,
`run`), attribute/index access, comparisons, boolean and arithmetic operators and a few pure
functions. Expressions are parsed and checked when a file is validated, so a typo fails the
apply, not a run at 2 a.m.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from simpleeval import AttributeDoesNotExist, EvalWithCompoundTypes

from scheduler.definitions.errors import ExpressionError

CONTEXT_NAMES = frozenset({"input", "steps", "run"})
CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False,
             "None": None}
FUNCTIONS = {
    "len": len, "str": str, "int": int, "float": float, "bool": bool, "abs": abs,
    "min": min, "max": max, "round": round, "sorted": sorted, "any": any, "all": all,
    "lower": lambda s: str(s).lower(), "upper": lambda s: str(s).upper(),
}
_REFERENCE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


class _Evaluator(EvalWithCompoundTypes):
    def _eval_attribute(self, node: ast.Attribute) -> Any:
        # On JSON data `a.b` means the key "b": simpleeval tries getattr first, so
        # `input.items` or `steps.x.output.values` would give a dict method, not the value.
        value = self._eval(node.value)
        if isinstance(value, dict) and not node.attr.startswith("_"):
            if node.attr in value:
                return value[node.attr]
            raise AttributeDoesNotExist(node.attr, self.expr)
        return super()._eval_attribute(node)


def _evaluator(context: dict[str, Any] | None = None) -> EvalWithCompoundTypes:
    # A copy: EvalWithCompoundTypes adds list/tuple/dict/set to the dict it is given, which
    # would silently widen FUNCTIONS (and so what `parse` accepts) beyond the documented set.
    return _Evaluator(names={**CONSTANTS, **(context or {})}, functions=dict(FUNCTIONS))


@lru_cache(maxsize=1024)
def parse(text: str) -> ast.Expression:
    """Parse and check an expression; raises ExpressionError with a readable reason."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("expression is empty")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid expression {text!r}: {exc.msg}") from None
    allowed = _evaluator().nodes
    for node in ast.walk(tree):
        if isinstance(node, (ast.Lambda, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom,
                             ast.Starred)):
            raise ExpressionError(f"{type(node).__name__} is not allowed in {text!r}")
        if isinstance(node, ast.expr) and type(node) not in allowed:
            raise ExpressionError(f"{type(node).__name__} is not allowed in {text!r}")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"attribute {node.attr!r} is not allowed in {text!r}")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", "?")
                raise ExpressionError(
                    f"unknown function {name!r} in {text!r}; available: "
                    f"{', '.join(sorted(FUNCTIONS))}"
                )
    bound = _bound_names(tree)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Name) and node.id not in CONTEXT_NAMES
                and node.id not in CONSTANTS and node.id not in FUNCTIONS
                and node.id not in bound):
            raise ExpressionError(
                f"unknown name {node.id!r} in {text!r}; use input, steps or run"
            )
    return tree


def _bound_names(tree: ast.AST) -> set[str]:
    """Names bound by comprehensions (`[x for x in input.items]`)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension):
            for target in ast.walk(node.target):
                if isinstance(target, ast.Name):
                    names.add(target.id)
    return names


def step_references(text: str) -> set[str]:
    """Step ids an expression reads: `steps.build...` or `steps['build']...`."""
    refs = set()
    for node in ast.walk(parse(text)):
        if isinstance(node, ast.Attribute) and _is_steps(node.value):
            refs.add(node.attr)
        elif (isinstance(node, ast.Subscript) and _is_steps(node.value)
              and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            refs.add(node.slice.value)
    return refs


def _is_steps(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "steps"


def evaluate(text: str, context: dict[str, Any]) -> Any:
    tree = parse(text)
    try:
        return _evaluator(context).eval(text.strip(), previously_parsed=tree.body)
    except Exception as exc:  # noqa: BLE001 - any failure of user code is the step's error
        raise ExpressionError(f"{text.strip()!r} failed: {type(exc).__name__}: {exc}") from None


def condition(text: str, context: dict[str, Any]) -> bool:
    return bool(evaluate(text, context))


def references(value: Any) -> Iterator[tuple[list[str | int], str]]:
    """Every `${{ }}` expression inside a JSON value, with its path inside the value."""
    if isinstance(value, str):
        for match in _REFERENCE.finditer(value):
            yield [], match.group(1)
    elif isinstance(value, dict):
        for key, item in value.items():
            for path, text in references(item):
                yield [key, *path], text
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for path, text in references(item):
                yield [index, *path], text


def resolve(value: Any, context: dict[str, Any]) -> Any:
    """Replace references in a JSON value. A string that is one whole reference becomes the
    referenced value itself (a number stays a number); references inside longer strings are
    formatted as text."""
    if isinstance(value, str):
        text = value.strip()
        found = list(_REFERENCE.finditer(text))
        if len(found) == 1 and found[0].span() == (0, len(text)):
            return evaluate(found[0].group(1), context)
        return _REFERENCE.sub(lambda m: _text(evaluate(m.group(1), context)), value)
    if isinstance(value, dict):
        return {key: resolve(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, context) for item in value]
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
