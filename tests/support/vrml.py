"""A small reader of the VRML (Webots ``.wbt``/``.proto``) files hcgym exports, for tests.

Files are tokenized and parsed into :class:`VNode` trees; nothing here proves that Webots itself
accepts the files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hcgym.worlds import webots_export as wx

HEADER = "#VRML_SIM R2023b utf8"


_TOKEN = re.compile(r"""
    (?P<ws>[\s,]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![A-Za-z_])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\]])
""", re.X)


@dataclass
class Tok:
    kind: str
    text: str

    @property
    def value(self) -> Any:
        if self.kind == "string":
            return re.sub(r"\\(.)", r"\1", self.text[1:-1])
        if self.kind == "number":
            return float(self.text)
        return self.text


def tokenize(text: str) -> list[Tok]:
    """Strings, numbers, identifiers and braces/brackets; comments and commas are whitespace."""
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise AssertionError(f"bad character {text[pos]!r} at {text[:pos].count(chr(10)) + 1}:{pos}")
        if m.lastgroup not in ("ws", "comment"):
            out.append(Tok(m.lastgroup, m.group()))
        pos = m.end()
    depth = {"{": 0, "[": 0}
    for t in out:  # brackets balance and never close more than they opened
        if t.text in "{[" and t.kind == "punct":
            depth[t.text] += 1
        elif t.text in "}]" and t.kind == "punct":
            depth["{" if t.text == "}" else "["] -= 1
            assert min(depth.values()) >= 0, "closing bracket without an opening one"
    assert depth == {"{": 0, "[": 0}, f"unbalanced brackets {depth}"
    return out


@dataclass
class VNode:
    type: str
    def_: str | None
    fields: dict[str, Any] = field(default_factory=dict)

    def children(self) -> list["VNode"]:
        return [c for c in self.fields.get("children", []) if isinstance(c, VNode)]

    def walk(self):
        yield self
        for v in self.fields.values():
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, VNode):
                    yield from x.walk()


class Parser:
    """Every node is ``[DEF id] Type { (field value)* }``; a value is a node, a string, numbers,
    TRUE/FALSE/NULL, ``IS id`` or a ``[ ]`` list of nodes, strings or numbers."""

    def __init__(self, tokens: list[Tok]) -> None:
        self.t, self.i = tokens, 0

    def peek(self, k: int = 0) -> Tok | None:
        return self.t[self.i + k] if self.i + k < len(self.t) else None

    def next(self, kind: str | None = None, text: str | None = None) -> Tok:
        tok = self.peek()
        assert tok is not None, "unexpected end of file"
        assert kind is None or tok.kind == kind, f"expected {kind}, got {tok}"
        assert text is None or tok.text == text, f"expected {text!r}, got {tok}"
        self.i += 1
        return tok

    def at_node(self) -> bool:
        a, b = self.peek(), self.peek(1)
        return a is not None and a.kind == "ident" and (a.text == "DEF" or (b is not None and b.text == "{"))

    def node(self) -> VNode:
        def_ = None
        if self.peek().text == "DEF":
            self.next()
            def_ = self.next("ident").text
        n = VNode(self.next("ident").text, def_)
        self.next("punct", "{")
        while self.peek().text != "}":
            name = self.next("ident").text
            assert name not in n.fields, f"field {name} twice in {n.type}"
            n.fields[name] = self.value()
        self.next("punct", "}")
        return n

    def numbers(self) -> tuple[float, ...]:
        out = []
        while self.peek() is not None and self.peek().kind == "number":
            out.append(self.next().value)
        return tuple(out)

    def value(self) -> Any:
        tok = self.peek()
        if tok.kind == "string":
            return self.next().value
        if tok.kind == "number":
            return self.numbers()
        if tok.text == "[":
            self.next()
            items: list[Any] = []
            while self.peek().text != "]":
                if self.at_node():
                    items.append(self.node())
                elif self.peek().kind == "string":
                    items.append(self.next().value)
                else:
                    nums = self.numbers()
                    assert nums, f"unexpected {self.peek()} in a list"
                    items.extend(nums)
            self.next()
            return items
        if tok.text in ("TRUE", "FALSE"):
            return self.next().text == "TRUE"
        if tok.text == "NULL":
            self.next()
            return None
        if tok.text == "IS":
            self.next()
            return ("IS", self.next("ident").text)
        assert self.at_node(), f"unexpected {tok}"
        return self.node()


@dataclass
class World:
    path: Path
    externprotos: list[str]
    nodes: list[VNode]
    strings: list[str]

    @property
    def defs(self) -> dict[str, VNode]:
        return {n.def_: n for top in self.nodes for n in top.walk() if n.def_}

    def all_nodes(self):
        for top in self.nodes:
            yield from top.walk()


@dataclass
class Proto:
    path: Path
    name: str
    interface: dict[str, tuple[str, Any]]
    body: VNode
    strings: list[str]


def read_wbt(path: Path) -> World:
    text = path.read_text()
    assert text.splitlines()[0] == HEADER
    toks = tokenize(text)
    p = Parser(toks)
    externs = []
    while p.peek() is not None and p.peek().text == "EXTERNPROTO":
        p.next()
        externs.append(p.next("string").value)
    nodes = []
    while p.peek() is not None:
        assert p.at_node(), f"expected a node, got {p.peek()}"
        nodes.append(p.node())
    return World(path, externs, nodes, [t.value for t in toks if t.kind == "string"])


def read_proto(path: Path) -> Proto:
    text = path.read_text()
    assert text.splitlines()[0] == HEADER
    toks = tokenize(text)
    p = Parser(toks)
    p.next("ident", "PROTO")
    name = p.next("ident").text
    p.next("punct", "[")
    interface = {}
    while p.peek().text != "]":
        assert p.next("ident").text in ("field", "vrmlField", "hiddenField", "deprecatedField")
        ftype, fname = p.next("ident").text, p.next("ident").text
        interface[fname] = (ftype, p.value())
    p.next("punct", "]")
    p.next("punct", "{")
    body = p.node()
    p.next("punct", "}")
    assert p.peek() is None, "text after the PROTO body"
    return Proto(path, name, interface, body, [t.value for t in toks if t.kind == "string"])


def rotation_of(value: tuple[float, ...]) -> np.ndarray:
    assert len(value) == 4 and abs(np.linalg.norm(value[:3]) - 1.0) < 1e-5, value
    return wx.rotation_matrix(value)
