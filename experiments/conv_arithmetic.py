r"""Seeing convolution: output-size arithmetic, checked against the real op and drawn.

  python -m experiments.conv_arithmetic --input_size=5 --kernel_size=3 --padding=1 --stride=2
  python -m experiments.conv_arithmetic --input_size=7 --kernel_size=3 --dilation=2 --padding=same
  python -m experiments.conv_arithmetic --input_size=6,8 --kernel_size=3 --padding=0:1 --stride=2
  python -m experiments.conv_arithmetic --mode=transposed --input_size=3 --kernel_size=3 --stride=2 \
      --padding=1 --output_padding=1
  python -m experiments.conv_arithmetic --mode=upsample --input_size=3 --factor=2

Prints the output-size formula with the numbers substituted, then runs the real op
(cnnjax.ops.conv2d / conv_transpose2d / upsample_nearest on zeros) and prints whether it
agrees.  Writes <out_dir>/conv_arithmetic.png.  --padding: an int, lo:hi, same or valid
(transposed: an int).  Values given as one number apply to both axes; H,W sets each.
"""
from __future__ import annotations

import os

import numpy as np
from absl import flags

from experiments import common, demo_flags

NAME = "conv_arithmetic"

_INPUT_SIZE = flags.DEFINE_string("input_size", "5", "Input size: H (square) or H,W.")
_KERNEL_SIZE = flags.DEFINE_string("kernel_size", "3", "Kernel size: k or kh,kw.")
_PADDING = demo_flags.PADDING
_STRIDE = flags.DEFINE_string("stride", "1", "Stride: s or sh,sw.")
_DILATION = flags.DEFINE_string("dilation", "1", "Dilation: d or dh,dw (taps d apart).")
_MODE = flags.DEFINE_enum("mode", "conv", ["conv", "transposed", "upsample"], "Which op's arithmetic to show.")
_OUTPUT_PADDING = flags.DEFINE_string("output_padding", "0", "Transposed only: extra rows/cols at the "
                                      "bottom/right, op or oph,opw (must be < stride or dilation).")
_FACTOR = flags.DEFINE_string("factor", "2", "Upsample only: repeat factor f or fh,fw.")

# Colours of the diagram: cell categories, and the shading of the first and second window.
INPUT, PAD, PIXEL, ZERO, OUTPAD, CROP, OUT = range(7)
COLORS = {INPUT: "#ffffff", PAD: "#cfcfcf", PIXEL: "#9fd68f", ZERO: "#ffffff", OUTPAD: "#8f8f8f",
          CROP: "#f4b6b6", OUT: "#ffffff"}
FIRST, SECOND = "#1f5fa8", "#d9730d"
ALPHA = 0.55  # plots.plot_cell_grids' default overlay_alpha


def _tint(color: str) -> tuple:
    """How a window colour looks shaded over a white cell (for the legend)."""
    import matplotlib.colors as mcolors

    return tuple(1 - ALPHA + ALPHA * v for v in mcolors.to_rgb(color))


def parse_ints(text: str, flag: str, low: int) -> tuple[int, int]:
    """'n' -> (n, n); 'a,b' -> (a, b); every value an integer >= low, else UsageError."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise common.UsageError(f"--{flag} must be an integer or two integers a,b; got {text!r}") from None
    if len(values) not in (1, 2):
        raise common.UsageError(f"--{flag} must be an integer or two integers a,b; got {text!r}")
    if min(values) < low:
        raise common.UsageError(f"--{flag} must be >= {low}; got {text!r}")
    return (values * 2)[:2] if len(values) == 1 else values


def parse_padding(text: str):
    """'same' | 'valid' | 'p' | 'lo:hi' -> a 1-D cnnjax padding spec (str, int or (lo, hi))."""
    t = str(text).strip().lower()
    if t in ("same", "valid"):
        return t
    try:
        if ":" in t:
            lo, hi = (int(v) for v in t.split(":"))
            spec = (lo, hi)
        else:
            spec = int(t)
    except ValueError:
        raise common.UsageError(f"--padding must be an int, lo:hi, 'same' or 'valid'; got {text!r}") from None
    if min(np.atleast_1d(spec)) < 0:
        raise common.UsageError(f"--padding must be non-negative; got {text!r}")
    return spec


# --------------------------------------------------------------------------- arithmetic


def conv_axis(n: int, k: int, s: int, padding, d: int) -> dict:
    """One axis of a convolution: the numbers, the formula text and the size (ValueError
    from ops.conv_output_size when the kernel does not fit)."""
    from cnnjax import ops

    size = ops.conv_output_size(n, k, s, padding, d)  # validates first: one-line ValueError
    lo, hi = ops.resolve_padding(padding, k, d)
    num = n + lo + hi - d * (k - 1) - 1
    out = num // s + 1
    text = (f"out = floor((n + lo + hi - d*(k-1) - 1)/s) + 1 = floor(({n} + {lo} + {hi} - {d}*({k}-1) - 1)/{s}) + 1"
            f" = floor({num}/{s}) + 1 = {out}")
    note = ""
    if padding == "same":
        note = f"'same' padding: total d*(k-1) = {d * (k - 1)} -> lo = ceil({d * (k - 1)}/2) = {lo}, hi = {hi}"
    return dict(n=n, k=k, s=s, d=d, lo=lo, hi=hi, out=out, library=size, text=text, note=note)


def transposed_axis(n: int, k: int, s: int, p: int, op: int, d: int) -> dict:
    from cnnjax import ops

    size = ops.transposed_output_size(n, k, s, p, op, d)  # validates
    out = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
    text = (f"out = (n-1)*s - 2p + d*(k-1) + op + 1 = ({n}-1)*{s} - 2*{p} + {d}*({k}-1) + {op} + 1 = {out}")
    base, edge = (n - 1) * s + 1, d * (k - 1) - p
    how = (f"padded by d*(k-1)-p = {edge} on each side" if edge >= 0
           else f"cropped by p-d*(k-1) = {-edge} on each side (negative padding)")
    note = (f"= a stride-1 conv with the flipped kernel over the zero-inserted input ((n-1)*s+1 = {base}) "
            f"{how}" + (f", plus op = {op} extra at the end" if op else ""))
    return dict(n=n, k=k, s=s, d=d, p=p, op=op, out=out, library=size, text=text, note=note, base=base, edge=edge)


def upsample_axis(n: int, f: int) -> dict:
    return dict(n=n, f=f, out=n * f, library=n * f, text=f"out = n * factor = {n} * {f} = {n * f}", note="")


def run_op(mode: str, hw, axes) -> tuple[int, int]:
    """Run the real cnnjax op on zeros; its output (H, W)."""
    import jax.numpy as jnp

    from cnnjax import ops

    x = jnp.zeros((1, *hw, 1), jnp.float32)
    if mode == "upsample":
        y = ops.upsample_nearest(x, tuple(a["f"] for a in axes))
    else:
        w = jnp.zeros((axes[0]["k"], axes[1]["k"], 1, 1), jnp.float32)
        stride, dilation = tuple(a["s"] for a in axes), tuple(a["d"] for a in axes)
        if mode == "conv":
            y = ops.conv2d(x, w, stride=stride, padding=tuple((a["lo"], a["hi"]) for a in axes), dilation=dilation)
        else:
            y = ops.conv_transpose2d(x, w, stride=stride, padding=tuple(a["p"] for a in axes),
                                     output_padding=tuple(a["op"] for a in axes), dilation=dilation)
    return int(y.shape[1]), int(y.shape[2])


# --------------------------------------------------------------------------- diagrams


def _taps(r0, c0, kh, kw, dh, dw) -> list[tuple[int, int]]:
    """Cells of a dilated kh x kw window whose top-left tap is (r0, c0)."""
    return [(r0 + a * dh, c0 + b * dw) for a in range(kh) for b in range(kw)]


def _second_position(out_hw, stride):
    """The next window along the width (or the height), or None if there is one only."""
    if out_hw[1] > 1:
        return 0, stride[1], (0, 1)
    if out_hw[0] > 1:
        return stride[0], 0, (1, 0)
    return None


def _window_panels(start, out_hw, kernel, stride, dilation):
    """Overlays (taps), outlines and top-left marks of the first two windows (the first
    starts at ``start``), and the output panel's overlays."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    r0, c0 = start
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    overlays = [(_taps(r0, c0, kh, kw, dh, dw), FIRST)]
    outlines = [(r0, c0, *span, FIRST)]
    out_overlays = [([(0, 0)], FIRST)]
    second = _second_position(out_hw, stride)
    if second is not None:
        r1, c1, out_index = second
        overlays.append((_taps(r0 + r1, c0 + c1, kh, kw, dh, dw), SECOND))
        outlines.append((r0 + r1, c0 + c1, *span, SECOND))
        out_overlays.append(([out_index], SECOND))
    marks = [(r0 + i * sh, c0 + j * sw) for i in range(out_hw[0]) for j in range(out_hw[1])]
    return overlays, outlines, marks, out_overlays


WINDOW_LEGEND = [(_tint(FIRST), "1st window's taps -> output (0, 0)"),
                 (_tint(SECOND), "2nd window's taps -> next output"),
                 ("dot", "window top-left corners (one per output)")]


def draw_conv(axes, path):
    (ah, aw) = axes
    h, w = ah["n"] + ah["lo"] + ah["hi"], aw["n"] + aw["lo"] + aw["hi"]
    grid = np.full((h, w), PAD)
    grid[ah["lo"]:ah["lo"] + ah["n"], aw["lo"]:aw["lo"] + aw["n"]] = INPUT
    out_hw = (ah["out"], aw["out"])
    overlays, outlines, marks, out_overlays = _window_panels((0, 0), out_hw, (ah["k"], aw["k"]),
                                                             (ah["s"], aw["s"]), (ah["d"], aw["d"]))
    pad_text = (f"pad {ah['lo']}:{ah['hi']}" if (ah["lo"], ah["hi"]) == (aw["lo"], aw["hi"])
                else f"pad rows {ah['lo']}:{ah['hi']}, cols {aw['lo']}:{aw['hi']}")
    panels = [
        dict(cells=grid, colors=COLORS, overlays=overlays, marks=marks, outlines=outlines,
             origin=(ah["lo"], aw["lo"]),
             title=f"padded input {h}x{w} ({ah['n']}x{aw['n']}, {pad_text})\n"
                   f"kernel {ah['k']}x{aw['k']}, dilation {_pair_text(ah['d'], aw['d'])}, "
                   f"stride {_pair_text(ah['s'], aw['s'])}"),
        dict(cells=np.full(out_hw, OUT), colors=COLORS, overlays=out_overlays,
             title=f"output {out_hw[0]}x{out_hw[1]}"),
    ]
    legend = [(COLORS[INPUT], "input pixel"), (COLORS[PAD], "padding (zeros)")] + WINDOW_LEGEND
    from cnnjax import plots

    return plots.plot_cell_grids(panels, path, "convolution: where the window goes", legend=legend)


def draw_transposed(axes, path):
    (ah, aw) = axes
    parts = []
    for a in axes:  # per axis: drawn cells before / base / after, and the conv's crop
        lo, hi = a["edge"], a["edge"] + a["op"]
        parts.append(dict(pad_lo=max(lo, 0), pad_hi=max(hi, 0), crop_lo=max(-lo, 0), crop_hi=max(-hi, 0),
                          size=a["base"] + max(lo, 0) + max(hi, 0)))
    ph, pw = parts
    grid = np.full((ph["size"], pw["size"]), PAD)
    labels = np.full(grid.shape, "", dtype=object)
    bh, bw = ah["base"], aw["base"]
    grid[ph["pad_lo"]:ph["pad_lo"] + bh, pw["pad_lo"]:pw["pad_lo"] + bw] = ZERO
    for i in range(ah["n"]):
        for j in range(aw["n"]):
            r, c = ph["pad_lo"] + i * ah["s"], pw["pad_lo"] + j * aw["s"]
            grid[r, c] = PIXEL
            labels[r, c] = f"x{i}{j}" if max(ah["n"], aw["n"]) <= 10 else ""
    # output_padding: the extra zero rows/cols at the bottom/right (beyond the symmetric padding)
    for axis, (a, p) in enumerate(zip(axes, parts)):
        extra = min(a["op"], p["pad_hi"])
        if extra:
            sl = [slice(None), slice(None)]
            sl[axis] = slice(p["size"] - extra, p["size"])
            grid[tuple(sl)] = np.where(grid[tuple(sl)] == PAD, OUTPAD, grid[tuple(sl)])
    # negative padding (p > d*(k-1)) crops the zero-inserted input instead
    for axis, p in enumerate(parts):
        for lo, hi in ((0, p["crop_lo"]), (p["size"] - p["crop_hi"], p["size"])):
            if hi > lo:
                sl = [slice(None), slice(None)]
                sl[axis] = slice(lo, hi)
                grid[tuple(sl)] = CROP
    out_hw = (ah["out"], aw["out"])
    overlays, outlines, marks, out_overlays = _window_panels((ph["crop_lo"], pw["crop_lo"]), out_hw,
                                                             (ah["k"], aw["k"]), (1, 1), (ah["d"], aw["d"]))
    panels = [
        dict(cells=grid, colors=COLORS, labels=labels, overlays=overlays, marks=marks, outlines=outlines,
             title=f"input with s-1 = {_pair_text(ah['s'] - 1, aw['s'] - 1)} zeros inserted between pixels, padded: "
                   f"{grid.shape[0]}x{grid.shape[1]}\nflipped {ah['k']}x{aw['k']} kernel, dilation "
                   f"{_pair_text(ah['d'], aw['d'])}, stride 1"),
        dict(cells=np.full(out_hw, OUT), colors=COLORS, overlays=out_overlays,
             title=f"output {out_hw[0]}x{out_hw[1]}"),
    ]
    used = set(np.unique(grid).tolist())
    legend = [(COLORS[cat], text) for cat, text in (
        (PIXEL, "input pixel x_ij"), (ZERO, "inserted zero"), (PAD, "padding d*(k-1)-p"),
        (OUTPAD, "output_padding"), (CROP, "cropped (p > d*(k-1))")) if cat in used] + WINDOW_LEGEND
    from cnnjax import plots

    return plots.plot_cell_grids(panels, path, "transposed convolution = zero insertion + padding + ordinary conv",
                                 legend=legend)


def draw_upsample(axes, path):
    (ah, aw) = axes
    index = np.arange(ah["n"] * aw["n"]).reshape(ah["n"], aw["n"])
    up = np.repeat(np.repeat(index, ah["f"], axis=0), aw["f"], axis=1)
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    colors = {i: cmap(i % 20) for i in range(index.size)}
    names = np.vectorize(lambda i: f"{i}")(index)
    panels = [dict(cells=index, colors=colors, labels=names, title=f"input {ah['n']}x{aw['n']} (pixel numbers)"),
              dict(cells=up, colors=colors, labels=np.vectorize(lambda i: f"{i}")(up),
                   title=f"nearest upsampling x{_pair_text(ah['f'], aw['f'])}: output {up.shape[0]}x{up.shape[1]}")]
    from cnnjax import plots

    return plots.plot_cell_grids(panels, path, "nearest-neighbour upsampling repeats each pixel")


def _pair_text(a, b) -> str:
    return f"{a}" if a == b else f"{a},{b}"


# --------------------------------------------------------------------------- main


def compute(mode: str, input_size, kernel_size, padding, stride, dilation, output_padding, factor) -> list[dict]:
    """Per-axis arithmetic (height, width) for the demo's options (already parsed)."""
    axes = []
    for ax in range(2):
        n = input_size[ax]
        if mode == "conv":
            axes.append(conv_axis(n, kernel_size[ax], stride[ax], padding, dilation[ax]))
        elif mode == "transposed":
            axes.append(transposed_axis(n, kernel_size[ax], stride[ax], padding, output_padding[ax], dilation[ax]))
        else:
            axes.append(upsample_axis(n, factor[ax]))
    return axes


def main(argv):
    del argv
    mode = _MODE.value
    input_size = parse_ints(_INPUT_SIZE.value, "input_size", 1)
    kernel_size = parse_ints(_KERNEL_SIZE.value, "kernel_size", 1)
    stride = parse_ints(_STRIDE.value, "stride", 1)
    dilation = parse_ints(_DILATION.value, "dilation", 1)
    output_padding = parse_ints(_OUTPUT_PADDING.value, "output_padding", 0)
    factor = parse_ints(_FACTOR.value, "factor", 1)
    padding = parse_padding(_PADDING.value)
    if mode == "transposed":
        if padding == "valid":
            padding = 0
        if not isinstance(padding, int):
            raise common.UsageError(f"--mode=transposed takes an integer --padding (cropped from both sides); "
                                    f"got {_PADDING.value!r}")
    axes = compute(mode, input_size, kernel_size, padding, stride, dilation, output_padding, factor)
    square = input_size[0] == input_size[1] and all(
        a["text"] == axes[0]["text"] for a in axes)
    print(f"mode: {mode}; input {input_size[0]}x{input_size[1]}" +
          ("" if mode == "upsample" else f", kernel {kernel_size[0]}x{kernel_size[1]}, stride "
           f"{_pair_text(*stride)}, dilation {_pair_text(*dilation)}, padding {_PADDING.value}") +
          (f", output_padding {_pair_text(*output_padding)}" if mode == "transposed" else "") +
          (f", factor {_pair_text(*factor)}" if mode == "upsample" else ""))
    for name, a in ((("both axes", axes[0]),) if square else (("height", axes[0]), ("width", axes[1]))):
        print(f"{name}: {a['text']}")
        if a["note"]:
            print(f"  {a['note']}")
    expected = (axes[0]["out"], axes[1]["out"])
    library = (axes[0]["library"], axes[1]["library"])
    got = run_op(mode, input_size, axes)
    op_name = {"conv": "ops.conv2d", "transposed": "ops.conv_transpose2d", "upsample": "ops.upsample_nearest"}[mode]
    print(f"output size: {expected[0]}x{expected[1]}")
    if mode == "conv":
        print(f"window top-left corners (input coordinates, negative = in the padding): rows "
              f"{_positions(axes[0])}; cols {_positions(axes[1])}")
    agrees = got == expected == library
    print(f"op agrees: {'yes' if agrees else 'NO'} ({op_name} on zeros of shape 1x{input_size[0]}x{input_size[1]}x1 "
          f"-> 1x{got[0]}x{got[1]}x1)")
    if not agrees:
        raise ValueError(f"formula gives {expected}, the library's size function {library}, the op {got}")
    directory = demo_flags.out_dir(NAME)
    draw = {"conv": draw_conv, "transposed": draw_transposed, "upsample": draw_upsample}[mode]
    path = draw(axes, os.path.join(directory, "conv_arithmetic.png"))
    print(f"wrote {path}")


def _positions(a: dict) -> str:
    starts = [i * a["s"] - a["lo"] for i in range(a["out"])]
    return ", ".join(map(str, starts)) if len(starts) <= 12 else f"{starts[0]}, {starts[1]}, ..., {starts[-1]}"


if __name__ == "__main__":
    common.run(main)
