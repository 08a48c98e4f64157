"""Breakpoint conditions and hit conditions (DAP's ``condition`` / ``hitCondition``)."""

from __future__ import annotations

import operator
import re

_HIT = re.compile(r"^\s*(==|=|!=|>=|<=|>|<|%)?\s*(\d+)\s*$")
_OPS = {
    None: operator.eq,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "%": lambda hits, n: n > 0 and hits % n == 0,
}


class ConditionError(ValueError):
    pass


def parse_hit_condition(text: str | None):
    """A predicate over the hit count: ``"3"`` (the third hit), ``">= 3"``, ``"% 10"``...

    Raises :class:`ConditionError` for anything else.
    """
    if text is None or not str(text).strip():
        return None
    m = _HIT.match(str(text))
    if not m:
        raise ConditionError(f"hit count {text!r} is not a number (or ==, !=, >, >=, <, <=, % followed by a number)")
    op, n = _OPS[m.group(1)], int(m.group(2))
    return lambda hits: op(hits, n)


def compile_condition(text: str | None):
    """The code object of a condition expression, or None. Raises ConditionError on a syntax error."""
    if text is None or not str(text).strip():
        return None
    try:
        return compile(str(text).strip(), "<breakpoint condition>", "eval")
    except SyntaxError as exc:
        raise ConditionError(f"condition {text!r} is not a Python expression: {exc.msg}") from None
