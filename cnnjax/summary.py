"""Per-layer model summary: output shape, parameters, FLOPs, receptive field.

Shapes come from ``jax.eval_shape``, so a summary of any input size (even a
1000x1000x3 image) allocates no arrays.  FLOPs are for ONE example, multiply-add = 2
FLOPs (see :mod:`cnnjax.blocks`).  The receptive field of a layer is the size of the
input patch (in input pixels) that one output position depends on, and its jump is the
input-pixel distance between neighbouring output positions:

    r_out = r_in + (k_eff - 1) * j_in,   j_out = j_in * stride    (k_eff = d*(k-1)+1)

Upsampling layers divide the jump by their factor.  After a dense layer every output
depends on the whole input ("all").
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass
class LayerRow:
    name: str                         # module path, e.g. "conv1"
    kind: str                         # class name, e.g. "Conv"
    output_shape: tuple[int, ...]     # per example (batch dim dropped)
    params: int
    flops: int                        # per example
    receptive_field: Optional[tuple[float, float]]  # (h, w) in input pixels; None = whole input
    jump: Optional[tuple[float, float]]             # (h, w) input pixels between outputs


@dataclasses.dataclass
class Summary:
    model: str
    input_shape: tuple[int, ...]
    rows: list[LayerRow]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_flops(self) -> int:
        return sum(r.flops for r in self.rows)

    @property
    def receptive_field(self):
        """Receptive field of the last spatial layer before any global layer."""
        spatial = [r for r in self.rows if r.receptive_field is not None]
        return spatial[-1].receptive_field if spatial else None

    def bytes_per_example(self, train: bool) -> int:
        """A rough float32 memory estimate for one example in a batch: every layer's output (kept
        twice when training, for the backward pass) plus the largest conv's patch matrix
        (out_h * out_w * k_h * k_w * C_in / groups values, which a library conv may build:
        ``flops / (2 * C_out)`` for a conv row).  Used to refuse batches that cannot fit."""
        activations = sum(math.prod(r.output_shape) for r in self.rows)
        patches = max((_patch_values(r) for r in self.rows), default=0)
        return 4 * (activations * (2 if train else 1) + patches)

    def largest_layer(self) -> LayerRow:
        """The row with the most output values plus patch values per example."""
        return max(self.rows, key=lambda r: math.prod(r.output_shape) + _patch_values(r))

    def table(self) -> str:
        return format_table(self)


def _patch_values(row: LayerRow) -> int:
    """Values in a spatial layer's patch matrix per example (out_h * out_w * k_h * k_w * C_in /
    groups = ``flops / (2 * C_out)`` for a conv); 0 for non-spatial rows."""
    if len(row.output_shape) != 3 or not row.output_shape[-1]:
        return 0
    return row.flops // (2 * row.output_shape[-1])


def _count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def _fmt_pair(v) -> str:
    if v is None:
        return "all"
    f = lambda x: f"{x:g}"
    return f(v[0]) if v[0] == v[1] else f"{f(v[0])}x{f(v[1])}"


def _dense_flops(module: nn.Dense, in_shape, out_shape) -> int:
    return 2 * int(in_shape[-1]) * int(out_shape[-1])


def summarize(model: nn.Module, input_shape: Sequence[int], model_name: Optional[str] = None) -> Summary:
    """Trace ``model`` on an abstract input of ``input_shape`` (H, W, C) and describe every leaf layer.

    Nothing is allocated: both ``init`` and ``apply`` run under ``jax.eval_shape``.
    """
    input_shape = tuple(int(d) for d in input_shape)
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    calls: list[tuple[tuple[str, ...], nn.Module, Any, Any]] = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and context.module.scope is not None:
            path = tuple(context.module.scope.path)
            if path:
                calls.append((path, context.module, args[0].shape, out.shape))
        return out

    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    with nn.intercept_methods(record):
        jax.eval_shape(model.apply, variables, x)

    paths = [c[0] for c in calls]
    is_leaf = lambda p: not any(q != p and q[:len(p)] == p for q in paths)
    params = variables.get("params", {})
    rows, rf, jump = [], (1.0, 1.0), (1.0, 1.0)
    for path, module, in_shape, out_shape in calls:
        if not is_leaf(path):
            continue
        sub = params
        for name in path:
            sub = sub.get(name, {}) if isinstance(sub, dict) else {}
        n_params = _count(sub)
        if hasattr(module, "geometry") and rf is not None:
            k_eff, stride, up = module.geometry()
            jump_in = jump
            jump = tuple(j * s / u for j, s, u in zip(jump, stride, up))
            # Upsampling layers place kernel taps at the *output* spacing.
            step = tuple(j / u for j, u in zip(jump_in, up))
            rf = tuple(r + (k - 1) * st for r, k, st in zip(rf, k_eff, step))
        elif len(out_shape) < 4:  # flattened / dense: global from here on
            rf, jump = None, None
        if hasattr(module, "flops"):
            flops = module.flops(in_shape, out_shape)
        elif isinstance(module, nn.Dense):
            flops = _dense_flops(module, in_shape, out_shape)
        else:
            flops = 0
        rows.append(LayerRow("/".join(path), type(module).__name__, tuple(int(d) for d in out_shape[1:]),
                             n_params, int(flops), rf, jump))
    return Summary(model_name or type(model).__name__, input_shape, rows)


def _human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:g}"


def format_table(s: Summary) -> str:
    """Fixed-width text table, one row per layer, totals at the bottom."""
    header = ("layer", "type", "output shape", "params", "FLOPs", "RF", "jump")
    body = [(r.name, r.kind, "x".join(map(str, r.output_shape)), f"{r.params:,}", _human(r.flops),
             _fmt_pair(r.receptive_field), _fmt_pair(r.jump)) for r in s.rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    rule = "-" * len(line(header))
    out = [f"{s.model}  input {'x'.join(map(str, s.input_shape))} (HxWxC)", rule, line(header), rule]
    out += [line(b) for b in body]
    out += [rule, f"total params: {s.total_params:,}   total FLOPs per example: {_human(s.total_flops)} "
                  f"({s.total_flops:,})   receptive field: {_fmt_pair(s.receptive_field)}"]
    return "\n".join(out)
