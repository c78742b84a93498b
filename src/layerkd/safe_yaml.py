"""Reading YAML configs and suites as plain data, refusing what ``yaml.safe_load`` lets through.

:func:`load` is ``yaml.safe_load`` (no tags that build objects, no imports, no code) with three
differences, each a user-facing decision:

* **Duplicate keys are an error** naming the key and both lines. ``yaml.safe_load`` keeps the
  last one silently, so a second ``train:`` section replaced the first whole. Keys brought in by
  a merge key (``<<: *base``) may still be overridden: that is what merging is for.
* **Aliases are bounded.** An alias (``*name``) re-uses a node without copying it, so a few lines
  of nested aliases ("billion laughs") describe 10^9 nodes that every later step (validation,
  merging, hashing) walks. The document's size with every alias expanded is computed on the node
  graph (each node once, in time linear in the file) and a document whose aliases add more than
  :data:`MAX_ALIAS_EXPANSION` nodes or :data:`MAX_ALIAS_CHARS` characters of text is refused, as is
  a recursive alias (``&a [*a]``). Ordinary use of anchors (a shared section, ``<<: *base``) is far
  below these bounds.
* **``1e-4`` is a number.** YAML 1.1 (PyYAML) reads a float only with a dot (``1.0e-4``), so
  ``lr: 1e-4`` was the string ``"1e-4"``; configs are validated with strict types, which would
  refuse that string. Exponent floats without a dot resolve to floats, as in YAML 1.2 and JSON.

Errors are ``yaml.YAMLError`` subclasses with a ``problem`` and a ``problem_mark`` (the line),
which :func:`layerkd.config.read_yaml` turns into one ``error:`` line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_ALIAS_EXPANSION = 100_000
"""Nodes that aliases may add to a document (counted with every alias expanded)."""
MAX_ALIAS_CHARS = 10_000_000
"""Characters of scalar text that aliases may add to a document."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader + duplicate-key check + alias bound + YAML 1.2 exponent floats."""

    def compose_document(self) -> Node:
        node = super().compose_document()
        _check_aliases(node)
        return node

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        # checked on the composed node, before any merge key is flattened into it
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                raise ComposerError(None, None, f"duplicate key {key_node.value!r} (first at line {seen[ident] + 1}); "
                                    "each key may appear once in a mapping", key_node.start_mark)
            seen[ident] = key_node.start_mark.line
        return node


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _check_aliases(root: Node | None) -> None:
    """Refuse a document whose aliases expand it beyond the bounds, or that refers to itself."""
    if root is None:
        return
    expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, chars) with aliases expanded
    unique_nodes = unique_chars = 0
    active: set[int] = set()
    # iterative post-order walk (a deep document must not hit Python's recursion limit)
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            active.discard(nid)
            nodes, chars = 1, 0
            for child in _children(node):
                cn, cc = expanded[id(child)]
                nodes, chars = nodes + cn, chars + cc
            if isinstance(node, ScalarNode):
                chars += len(node.value)
            expanded[nid] = (nodes, chars)
            if (nodes - unique_nodes > MAX_ALIAS_EXPANSION or chars - unique_chars > MAX_ALIAS_CHARS):
                raise ConstructorError(None, None, "aliases expand this document beyond "
                                       f"{MAX_ALIAS_EXPANSION} nodes or {MAX_ALIAS_CHARS} characters "
                                       "(a YAML alias bomb?); refused", node.start_mark)
            continue
        if nid in expanded:
            continue
        if nid in active:
            raise ConstructorError(None, None, "a recursive alias (a node that contains itself); refused",
                                   node.start_mark)
        active.add(nid)
        unique_nodes += 1
        unique_chars += len(node.value) if isinstance(node, ScalarNode) else 0
        stack.append((node, True))
        for child in _children(node):
            if id(child) in active:
                raise ConstructorError(None, None, "a recursive alias (a node that contains itself); refused",
                                       child.start_mark)
            if id(child) not in expanded:
                stack.append((child, False))


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load(text: str) -> Any:
    """Parse one YAML document as plain data (see the module docstring)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
