"""`triggerPolicy.condition` of a compiled KFP spec: the CEL subset `kfp-run` evaluates.

KFP (`backend/src/v2/expression/expression.go`) evaluates a task's condition as CEL over its
resolved inputs. `condition()` evaluates the subset KFP's and TFX's compilers emit
(comparisons of `inputs.parameter_values['x']`, artifact URIs and metadata with literals,
`int()`/`double()`, `&&`, `||`, `!`, parentheses; see `parse_condition`); anything else is a
`KfpSpecError` naming the condition, never true. The lowest of the kfp-run modules: it also
holds that error and `value_text` (KFP's `PbValueToText`), which `kfp_spec` re-exports.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any


class KfpSpecError(ValueError):
    """The spec or the run's arguments are wrong, or the spec asks for what KFP does not run."""


def value_text(value: Any) -> str:
    """KFP's `PbValueToText`: numbers without exponent or `.0`, JSON for lists and structs."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = format(Decimal(repr(float(value))), "f")
        return text[:-2] if text.endswith(".0") else text
    return json.dumps(value, separators=(",", ":"))


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[<>!()\[\].-])|(?P<name>[A-Za-z_]\w*))"
)
_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_LITERALS = {"true": True, "false": False, "null": None}


def _unquote(token: str) -> str:
    escapes = {"n": "\n", "t": "\t", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), token[1:-1])


class _Parser:
    """Recursive descent over the subset.

    `||`, `&&`, `!`, comparisons, parentheses, literals, `int()`/`double()`, and the references
    `inputs.parameter_values['x']`, `inputs.parameters['x'].string_value`,
    `inputs.artifacts['x'].artifacts[i].uri` and `....metadata['k']` (what TFX emits).
    """

    def __init__(self, text: str):
        self.text, self.tokens, position = text, [], 0
        while position < len(text.rstrip()):
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                self.fail(f"unexpected {text[position:].strip()[:10]!r}")
            kind = match.lastgroup
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.at = 0

    def fail(self, why: str):
        raise KfpSpecError(f"condition {self.text!r} is outside the CEL subset kfp-run evaluates: {why}")

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None, kind: str | None = None) -> str:
        if self.at >= len(self.tokens):
            self.fail("it ends early")
        token_kind, token = self.tokens[self.at]
        if (expected is not None and token != expected) or (kind is not None and token_kind != kind):
            self.fail(f"expected {expected or kind}, got {token!r}")
        self.at += 1
        return token

    def parse(self):
        tree = self.binary(0)
        if self.peek() is not None:
            self.fail(f"unexpected {self.peek()!r}")
        return tree

    def binary(self, level: int):
        if level == 2:
            return self.comparison()
        op = ("||", "&&")[level]
        tree = self.binary(level + 1)
        while self.peek() == op:
            self.take()
            tree = (op, tree, self.binary(level + 1))
        return tree

    def comparison(self):
        tree = self.unary()
        if self.peek() in _COMPARE:
            tree = ("cmp", self.take(), tree, self.unary())
        return tree

    def unary(self):
        if self.peek() in ("!", "-"):
            return (self.take(), self.unary())
        return self.primary()

    def primary(self):
        kind, token = self.tokens[self.at] if self.at < len(self.tokens) else (None, None)
        if token == "(":
            self.take()
            tree = self.binary(0)
            self.take(")")
            return tree
        if kind == "num":
            self.take()
            return ("lit", float(token) if any(c in token for c in ".eE") else int(token))
        if kind == "str":
            self.take()
            return ("lit", _unquote(token))
        if token in _LITERALS:
            self.take()
            return ("lit", _LITERALS[token])
        if token in ("int", "double"):
            self.take()
            self.take("(")
            tree = self.binary(0)
            self.take(")")
            return (token, tree)
        if token == "inputs":
            return self.reference()
        return self.fail(f"unexpected {token!r}")

    def key(self) -> str:
        self.take("[")
        token = self.take(kind="str")
        self.take("]")
        return _unquote(token)

    def reference(self):
        self.take("inputs")
        self.take(".")
        field = self.take(kind="name")
        if field == "parameter_values":
            return ("param", self.key())
        if field == "parameters":
            name = self.key()
            self.take(".")
            self.take("string_value")
            return ("text", name)
        if field != "artifacts":
            self.fail(f"inputs.{field}")
        name = self.key()
        self.take(".")
        self.take("artifacts")
        self.take("[")
        index = int(self.take(kind="num"))
        self.take("]")
        self.take(".")
        if self.peek() == "uri":
            self.take()
            return ("artifact", name, index, "uri", None)
        self.take("metadata")
        return ("artifact", name, index, "metadata", self.key())


def parse_condition(condition: str):
    """The syntax tree of a trigger condition; KfpSpecError when it is outside the subset."""
    return _Parser(condition).parse()


def condition(text: str, inputs: dict) -> bool:
    """Evaluate a trigger condition over a task's resolved inputs (ExecutorInput.inputs as JSON).

    Raises:
        KfpSpecError: the condition is outside the subset, names an input the task lacks,
            compares values of different types, or is not a boolean.
    """

    def fail(why: str):
        raise KfpSpecError(f"condition {text!r}: {why}")

    def number(value):
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail(f"{value!r} is not a number")
        return value

    def evaluate(tree):
        op = tree[0]
        if op == "lit":
            return tree[1]
        if op in ("param", "text"):
            values = inputs.get("parameterValues", {})
            if tree[1] not in values:
                fail(f"no such key: {tree[1]}")
            return value_text(values[tree[1]]) if op == "text" else values[tree[1]]
        if op == "artifact":
            _, name, index, field, key = tree
            listed = inputs.get("artifacts", {}).get(name, {}).get("artifacts", [])
            if index >= len(listed):
                fail(f"no artifact {name}[{index}]")
            if field == "uri":
                return listed[index].get("uri", "")
            if key not in (listed[index].get("metadata") or {}):
                fail(f"no such key: {key} in the metadata of {name}")
            return listed[index]["metadata"][key]
        if op in ("&&", "||"):
            left = evaluate(tree[1])
            if not isinstance(left, bool):
                fail(f"{op} of a non-boolean {left!r}")
            if left == (op == "||"):
                return left
            right = evaluate(tree[2])
            if not isinstance(right, bool):
                fail(f"{op} of a non-boolean {right!r}")
            return right
        if op == "!":
            value = evaluate(tree[1])
            return not value if isinstance(value, bool) else fail(f"! of a non-boolean {value!r}")
        if op == "-":
            return -number(evaluate(tree[1]))
        if op == "int":
            value = evaluate(tree[1])
            if isinstance(value, str):
                return int(value) if re.fullmatch(r"-?\d+", value.strip()) else fail(f"int({value!r})")
            return int(number(value))
        if op == "double":
            value = evaluate(tree[1])
            try:
                return float(value) if isinstance(value, str) else float(number(value))
            except ValueError:
                fail(f"double({value!r})")
        left, right = evaluate(tree[2]), evaluate(tree[3])
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
        if not numeric and type(left) is not type(right):
            fail(f"no such overload: {left!r} {tree[1]} {right!r}")
        if tree[1] not in ("==", "!=") and not (numeric or isinstance(left, str)):
            fail(f"no such overload: {left!r} {tree[1]} {right!r}")
        return _COMPARE[tree[1]](left, right)

    try:
        result = evaluate(parse_condition(text))
    except (TypeError, ValueError, OverflowError) as error:
        if isinstance(error, KfpSpecError):
            raise
        fail(f"evaluation error: {error}")
    if not isinstance(result, bool):
        fail(f"return type is not bool, got {result!r}")
    return result
