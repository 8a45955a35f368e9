"""The documented template contexts (outbound/contexts.py, docs/templates.md) are what the
builders of outbound/notice_contexts.py make: every name documented is in the samples the
builders produce, and every value the builders produce is documented."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mailbridge.outbound.contexts import CANNED, CONTEXTS, TemplateContext, samples


def _paths(value: Any, prefix: str = "") -> Iterator[tuple[str, bool]]:
    """(dotted name, whether it is a leaf) for everything in a context: ``a.b`` for a
    mapping's keys, ``a[].b`` for the keys of a list's items."""
    if isinstance(value, dict):
        for key, inner in value.items():
            name = f"{prefix}.{key}" if prefix else key
            yield name, not (isinstance(inner, dict) or (isinstance(inner, list) and inner))
            yield from _paths(inner, name)
    elif isinstance(value, list):
        for item in value:
            yield from _paths(item, f"{prefix}[]")


def _names(ctx: TemplateContext) -> tuple[set[str], set[str]]:
    """Every name in the context's samples, and the leaves among them."""
    every: set[str] = set()
    leaves: set[str] = set()
    for _label, data in samples(ctx):
        for name, leaf in _paths(data):
            every.add(name)
            if leaf:
                leaves.add(name)
    return every, leaves


@pytest.mark.parametrize("name", [*CONTEXTS, "canned"])
def test_documented_variables_are_what_the_builders_make(name):
    ctx = CANNED if name == "canned" else CONTEXTS[name]
    documented = {var for var, _doc in ctx.variables}
    every, leaves = _names(ctx)
    assert documented - every == set(), f"{name}: documented but never in a context"
    assert leaves - documented == set(), f"{name}: in the context but not documented"
