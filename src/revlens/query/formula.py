"""Amplitude-style formulas over chart events: `UNIQUES(A)/UNIQUES(B)`, `PROPSUM(A)/TOTALS(A)`, `HIST(A)`.

Grammar: expr = term (('+'|'-') term)*; term = factor (('*'|'/') factor)*;
factor = number | FUNC '(' LETTER ')' | '(' expr ')' | '-' factor. Functions: UNIQUES, TOTALS,
AVG (= TOTALS/UNIQUES), PROPSUM and REVENUETOTAL (sum of the event's measured property),
PROPAVG (= PROPSUM/count of events with the property), HIST (frequency distribution, alone only).
Division by zero gives None (shown as null, never NaN).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

FUNCTIONS = ("UNIQUES", "TOTALS", "AVG", "PROPSUM", "PROPAVG", "HIST", "REVENUETOTAL")
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Z]+)\s*\(\s*([A-Z])\s*\)|(.))")


class FormulaError(ValueError):
    pass


@dataclass(frozen=True)
class Call:
    function: str
    event: int  # 0 for A, 1 for B, ...


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Neg:
    operand: Node


Node = Call | Num | BinOp | Neg


def _tokens(text: str) -> list[object]:
    out: list[object] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FormulaError(f"cannot read the formula at {text[pos:]!r}")
        number, function, letter, other = m.groups()
        if number is not None:
            out.append(Num(float(number)))
        elif function is not None:
            if function not in FUNCTIONS:
                raise FormulaError(f"unknown function {function} (known: {', '.join(FUNCTIONS)})")
            out.append(Call(function, ord(letter) - ord("A")))
        elif other is not None and other.strip():
            if other not in "+-*/()":
                raise FormulaError(f"unexpected {other!r} in the formula")
            out.append(other)
        pos = m.end()
    return out


def parse(text: str) -> Node:
    tokens = _tokens(text)
    pos = 0

    def peek() -> object:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> object:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr() -> Node:
        node = term()
        while peek() in ("+", "-"):
            node = BinOp(str(take()), node, term())
        return node

    def term() -> Node:
        node = factor()
        while peek() in ("*", "/"):
            node = BinOp(str(take()), node, factor())
        return node

    def factor() -> Node:
        token = peek()
        if token is None:
            raise FormulaError("the formula ends too early")
        take()
        if isinstance(token, Num | Call):
            return token
        if token == "-":
            return Neg(factor())
        if token == "(":
            node = expr()
            if take() != ")":
                raise FormulaError("missing ')'")
            return node
        raise FormulaError(f"unexpected {token!r}")

    node = expr()
    if pos != len(tokens):
        raise FormulaError(f"unexpected {tokens[pos]!r} after the end of the formula")
    return node


def calls(node: Node) -> list[Call]:
    if isinstance(node, Call):
        return [node]
    if isinstance(node, BinOp):
        return calls(node.left) + calls(node.right)
    if isinstance(node, Neg):
        return calls(node.operand)
    return []


def evaluate(node: Node, value_of: Callable[[Call], float | None]) -> float | None:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Call):
        return value_of(node)
    if isinstance(node, Neg):
        inner = evaluate(node.operand, value_of)
        return None if inner is None else -inner
    left, right = evaluate(node.left, value_of), evaluate(node.right, value_of)
    if left is None or right is None:
        return None
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    return None if right == 0 else left / right
