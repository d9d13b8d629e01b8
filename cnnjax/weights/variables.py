"""Variable paths: how conversion, ``init_from`` and freezing name and match a model's variables.

Paths.  Every leaf of a variable collection (``params``, ``batch_stats``) has a path: its keys
joined by '/', without the collection name -- ``conv1/kernel``, ``bn1_1/scale``,
``stage2_block1/conv1/kernel``, ``bn1_1/mean`` (a batch-norm statistic).  :func:`paths` lists them;
:func:`flatten` turns a variable tree into ``{collection: {path: leaf}}`` and :func:`fill` puts such
a mapping back into a tree of the model's structure.

Patterns.  A pattern is an ``fnmatch`` glob (case-sensitive) matched against the whole path;
``*`` also crosses '/'.  A pattern also matches every path below it, so ``conv1`` matches
``conv1/kernel`` and ``conv1/bias``, ``stage1_*`` a whole stage, ``*/kernel`` every kernel.
A list of patterns is read in order and the last one that matches a path decides; a pattern
starting with ``!`` un-matches: ``("*", "!fc")`` is everything but the head ``fc`` (a linear
probe).  Every pattern of a list must match at least one path (:class:`PatternError`, listing
the paths there are).
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

#: the variable collections a model's weights live in (running statistics in batch_stats)
COLLECTIONS = ("params", "batch_stats")


class PatternError(ValueError):
    """A pattern that matches no path, or patterns that leave nothing to train."""


def path_str(path) -> str:
    """'/'-joined keys of a ``jax.tree_util`` key path."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def paths(tree) -> list[str]:
    """The '/'-joined path of every leaf of ``tree`` (one collection, e.g. ``variables['params']``)."""
    return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def flatten(variables: Mapping[str, Any], leaf: Callable[[Any], Any] = lambda v: v) -> dict[str, dict[str, Any]]:
    """``{collection: {path: leaf(value)}}`` of a variable tree, for each of :data:`COLLECTIONS`
    (a collection the tree lacks is empty)."""
    return {c: {path_str(p): leaf(v) for p, v in jax.tree_util.tree_flatten_with_path(variables.get(c, {}))[0]}
            for c in COLLECTIONS}


def fill(tree, values: Mapping[str, Any], leaf: Callable[[Any], Any] = lambda v: v):
    """``tree`` (one collection) with each leaf whose path is in ``values`` (``{path: array}``)
    replaced by ``leaf(values[path])``; the other leaves stay as they are."""
    return jax.tree_util.tree_map_with_path(
        lambda p, v: leaf(values[path_str(p)]) if path_str(p) in values else v, tree)


def variable_shapes(model: nn.Module, image_shape) -> dict:
    """``model``'s variables for (H, W, C) images as ``jax.ShapeDtypeStruct`` s (nothing computed)."""
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, *image_shape), jnp.float32)))


def matches(pattern: str, path: str) -> bool:
    """Whether the one ``pattern`` (no ``!``) matches ``path`` or a path below it."""
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern + "/*")


def selected(patterns: Sequence[str], path: str) -> bool:
    """Whether the ordered ``patterns`` (``!`` negates; the last match decides) select ``path``."""
    chosen = False
    for p in patterns:
        negate = p.startswith("!")
        if matches(p[1:] if negate else p, path):
            chosen = not negate
    return chosen


def check_patterns(patterns: Sequence[str], available: Sequence[str], setting: str) -> None:
    """PatternError naming ``setting`` and the first pattern that matches none of ``available``."""
    for p in patterns:
        if not any(matches(p.lstrip("!"), a) for a in available):
            raise PatternError(f"{setting}: pattern {p!r} matches no variable; the paths are {describe(available)}")


def describe(available: Sequence[str]) -> str:
    """Paths grouped by layer for messages: 'bn1/{bias,mean,scale,var}, conv1/kernel, fc/{bias,kernel}'."""
    layers: dict[str, list[str]] = {}
    for p in sorted(available):
        layer, _, leaf = p.rpartition("/")
        layers.setdefault(layer, []).append(leaf)
    one = lambda layer, leaves: (f"{layer}/" if layer else "") + (leaves[0] if len(leaves) == 1 else
                                                                   "{" + ",".join(leaves) + "}")
    return ", ".join(one(layer, leaves) for layer, leaves in layers.items())
