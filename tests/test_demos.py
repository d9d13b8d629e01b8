"""The "seeing convolution" demos: the numbers behind each picture, the pictures, and the errors.

Demos run in-process (their ``main`` with parsed flags) to share one JAX start-up; only the
exit-status checks start a subprocess.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from cnnjax import filters, ops, plots
from experiments import conv_arithmetic, edge_detection, feature_maps, learn_kernel

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(module, *args):
    """Parse ``args`` as the command line and call ``module.main`` (flags restored afterwards)."""
    with flagsaver.flagsaver():
        FLAGS(["prog", *args])
        module.main(["prog"])


@pytest.fixture
def figures(monkeypatch):
    """Every figure cnnjax.plots writes, kept (written and closed) for inspecting its Axes."""
    saved, save = [], plots._save

    def spy(fig, path, dpi):
        saved.append(fig)
        return save(fig, path, dpi)

    monkeypatch.setattr(plots, "_save", spy)
    return saved


def assert_png(path):
    assert os.path.isfile(path), path
    assert os.path.getsize(path) > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        im.verify()
    assert w > 0 and h > 0


# --------------------------------------------------------------------------- filters


def test_laplacian_of_constant_is_exactly_zero():
    out = filters.apply_filter(np.full((6, 7), 37.0), "laplacian")
    assert out.shape == (4, 5)
    assert np.all(out == 0)


def test_laplacian_of_seed_scene_nonzero_exactly_at_the_edge():
    x = filters.seed_scene()
    assert x.shape == (9, 12) and x.sum() == 100 * 3 * 6
    out = filters.apply_filter(x, "laplacian")
    assert out.shape == (7, 10)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3))
    centre = x[1:-1, 1:-1]
    on_edge = windows.max(axis=(2, 3)) != windows.min(axis=(2, 3))  # a pixel on or next to the edge
    np.testing.assert_array_equal(out != 0, on_edge)
    assert np.all(out[on_edge & (centre == 100)] > 0)   # inside the rectangle's border
    assert np.all(out[on_edge & (centre == 0)] < 0)     # just outside it
    assert out[2, 2] == 9 * 100 - 4 * 100               # inner corner pixel (3, 3): 4 of 9 pixels lit
    # the same numbers as the plain textbook cross-correlation
    np.testing.assert_array_equal(out, np.asarray(ops.corr2d(x, filters.KERNELS["laplacian"])))


def test_sobel_of_a_ramp():
    ramp = np.tile(np.arange(10, dtype=np.float32) * 3, (6, 1))  # increases to the right
    np.testing.assert_array_equal(filters.apply_filter(ramp, "sobel_x"), np.full((4, 8), 3 * (1 + 2 + 1) * 2))
    np.testing.assert_array_equal(filters.apply_filter(ramp, "sobel_y"), np.zeros((4, 8)))
    np.testing.assert_array_equal(filters.apply_filter(ramp.T, "sobel_y"), np.full((8, 4), 24))


@pytest.mark.parametrize("name", ["box_blur", "gaussian_blur", "sharpen"])
def test_weights_summing_to_one_preserve_a_constant(name):
    assert filters.KERNELS[name].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(filters.apply_filter(np.full((5, 5), 42.0), name), np.full((3, 3), 42.0), rtol=1e-6)


def test_same_padding_keeps_the_size():
    assert filters.apply_filter(filters.scene(32), "sobel_x", padding="same").shape == (32, 32)


def test_to_gray_weights():
    rgb = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [255, 255, 255]]], np.uint8)
    np.testing.assert_allclose(filters.to_gray(rgb), [[0.2989, 0.5870, 0.1140, 255 * 0.9999]], rtol=1e-5)
    rgba = np.concatenate([rgb, np.full((1, 4, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_allclose(filters.to_gray(rgba), filters.to_gray(rgb))  # alpha ignored
    np.testing.assert_array_equal(filters.to_gray(np.ones((2, 3))), np.ones((2, 3)))


def test_load_image_rgb_png(tmp_path):
    path = tmp_path / "c.png"
    Image.fromarray(np.full((4, 5, 3), (200, 100, 50), np.uint8)).save(path)
    np.testing.assert_allclose(filters.load_image(str(path)), 0.2989 * 200 + 0.5870 * 100 + 0.1140 * 50, rtol=1e-5)
    with pytest.raises(FileNotFoundError):
        filters.load_image(str(tmp_path / "missing.png"))


def test_filter_errors():
    with pytest.raises(ValueError, match="known filters: laplacian"):
        filters.apply_filter(np.zeros((5, 5)), "no_such_filter")
    with pytest.raises(ValueError, match="does not fit"):
        filters.apply_filter(np.zeros((2, 9)), "laplacian")


# --------------------------------------------------------------------------- learn_kernel


def test_learn_kernel_recovers_the_laplacian():
    x = filters.seed_scene()
    true_k = filters.KERNELS["laplacian"]
    y = np.asarray(ops.corr2d(x, true_k))
    kernel, losses = learn_kernel.learn_kernel(x, y, steps=3000, loss_tolerance=1e-10)
    assert losses[-1] < 1e-10 and np.all(losses[:-1] >= 1e-10)  # stopped at the first loss below tolerance
    assert len(losses) - 1 < 3000
    assert np.max(np.abs(kernel - true_k)) < 1e-3


def test_learn_kernel_sgd_and_step_budget():
    x = filters.seed_scene()
    y = np.asarray(ops.corr2d(x, filters.KERNELS["sobel_x"]))
    kernel, losses = learn_kernel.learn_kernel(x, y, optimizer="sgd", steps=7)
    assert len(losses) == 8 and losses[-1] < losses[0]  # 7 updates, loss before each + after the last


def test_learn_kernel_demo(tmp_path, capsys):
    run_main(learn_kernel, f"--out_dir={tmp_path}", "--print_every=0")
    out = capsys.readouterr().out
    err = float(re.search(r"max \|learned - true\| = (\S+);", out).group(1))
    assert err < 1e-3
    assert "within --tolerance 0.0001: yes" in out
    assert_png(tmp_path / "loss_curve.png")


# --------------------------------------------------------------------------- edge_detection


def test_edge_detection_demo(tmp_path, capsys):
    run_main(edge_detection, f"--out_dir={tmp_path}")
    out = capsys.readouterr().out
    for name in filters.KERNELS:
        assert re.search(rf"^{name} .*62x62", out, re.M), name
    assert "[-1 -1 -1; -1 8 -1; -1 -1 -1]" in out
    assert_png(tmp_path / "edge_detection.png")


def test_edge_detection_sharpen_panel_shows_the_overshoot(tmp_path, capsys, figures):
    run_main(edge_detection, f"--out_dir={tmp_path}", "--filters=sharpen,box_blur")
    original, sharpened, blurred = (ax.images[0] for ax in figures[0].axes if ax.images)
    grey = lambda im: im.to_rgba(im.get_array())[..., 0]  # noqa: E731 - displayed brightness
    x = filters.scene(64)
    inner = x[1:-1, 1:-1]  # the pixels under each 'valid' output
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3))
    edge = windows.max(axis=(2, 3)) != windows.min(axis=(2, 3))
    shown, shown_x = grey(sharpened), grey(original)[1:-1, 1:-1]
    assert np.mean(shown[edge] != shown_x[edge]) > 0.9  # not a copy of the original where edges are
    # the overshoot is visible: brighter than the bright interior, darker than the background
    assert shown[edge & (inner == 100)].max() > shown[~edge & (inner == 100)].max()
    assert shown[edge & (inner == 0)].min() < shown[~edge & (inner == 0)].min()
    # the blur stays within the original's range, so it keeps the original's grey scale
    assert blurred.get_clim() == original.get_clim() == (0.0, 100.0)


def test_edge_detection_on_an_image_file(tmp_path, capsys):
    path = tmp_path / "in.png"
    Image.fromarray(np.kron(np.eye(3, dtype=np.uint8) * 255, np.ones((4, 4), np.uint8))).save(path)
    run_main(edge_detection, f"--out_dir={tmp_path}", f"--image={path}", "--filters=sobel_x,box_blur",
             "--padding=same")
    out = capsys.readouterr().out
    assert re.search(r"^sobel_x .*12x12", out, re.M) and "laplacian" not in out
    assert_png(tmp_path / "edge_detection.png")


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"), reason="no offline Fashion-MNIST")
def test_edge_detection_on_fashion_mnist(tmp_path, capsys):
    run_main(edge_detection, f"--out_dir={tmp_path}", "--dataset=fashion_mnist", "--index=0",
             "--filters=laplacian")
    assert "fashion_mnist test image 0 (Ankle boot, 28x28)" in capsys.readouterr().out
    assert_png(tmp_path / "edge_detection.png")


# --------------------------------------------------------------------------- conv_arithmetic


def _arith(tmp_path, capsys, *args):
    run_main(conv_arithmetic, f"--out_dir={tmp_path}", *args)
    out = capsys.readouterr().out
    assert "op agrees: yes" in out
    assert_png(tmp_path / "conv_arithmetic.png")
    h, w = (int(v) for v in re.search(r"^output size: (\d+)x(\d+)$", out, re.M).groups())
    return h, w, out


@pytest.mark.parametrize("n, k, padding, stride, dilation", [
    (5, 3, 1, 2, 1), (7, 3, "same", 1, 2), (6, 4, "same", 3, 1), (9, 3, "valid", 2, 3), (28, 5, (0, 1), 2, 1)])
def test_conv_arithmetic_matches_library_and_op(tmp_path, capsys, n, k, padding, stride, dilation):
    flag = f"{padding[0]}:{padding[1]}" if isinstance(padding, tuple) else str(padding)
    h, w, out = _arith(tmp_path, capsys, f"--input_size={n}", f"--kernel_size={k}", f"--padding={flag}",
                       f"--stride={stride}", f"--dilation={dilation}")
    expected = ops.conv_output_size(n, k, stride, padding, dilation)
    # lo:hi applies to both axes; a bare pair would mean (pad_h, pad_w) to conv2d
    real = ops.conv2d(np.zeros((1, n, n, 1), np.float32), np.zeros((k, k, 1, 1), np.float32), stride=stride,
                      padding=(padding, padding), dilation=dilation).shape
    assert (h, w) == (expected, expected) == real[1:3]
    assert f"= {expected}\n" in out  # the substituted formula ends in the same number


def test_conv_arithmetic_rectangular(tmp_path, capsys):
    h, w, out = _arith(tmp_path, capsys, "--input_size=6,8", "--kernel_size=3", "--padding=0:1", "--stride=2")
    assert (h, w) == (ops.conv_output_size(6, 3, 2, (0, 1)), ops.conv_output_size(8, 3, 2, (0, 1))) == (3, 4)
    assert "height: " in out and "width: " in out


@pytest.mark.parametrize("n, k, stride, padding, output_padding, dilation",
                         [(3, 3, 2, 1, 1, 1), (4, 4, 2, 1, 0, 1), (3, 3, 2, 3, 1, 2), (4, 3, 2, 3, 1, 1)])
def test_conv_arithmetic_transposed(tmp_path, capsys, n, k, stride, padding, output_padding, dilation):
    h, w, out = _arith(tmp_path, capsys, "--mode=transposed", f"--input_size={n}", f"--kernel_size={k}",
                       f"--stride={stride}", f"--padding={padding}", f"--output_padding={output_padding}",
                       f"--dilation={dilation}")
    expected = ops.transposed_output_size(n, k, stride, padding, output_padding, dilation)
    real = ops.conv_transpose2d(np.zeros((1, n, n, 1), np.float32), np.zeros((k, k, 1, 1), np.float32),
                                stride=stride, padding=padding, output_padding=output_padding,
                                dilation=dilation).shape
    assert (h, w) == (expected, expected) == real[1:3]


def test_conv_arithmetic_upsample(tmp_path, capsys):
    h, w, out = _arith(tmp_path, capsys, "--mode=upsample", "--input_size=3,2", "--factor=2")
    assert (h, w) == (6, 4) == ops.upsample_nearest(np.zeros((1, 3, 2, 1)), 2).shape[1:3]


# --------------------------------------------------------------------------- feature_maps


def test_feature_maps_demo(tmp_path, capsys):
    # No --workdir: one line says so, then --model is freshly initialised.
    run_main(feature_maps, f"--out_dir={tmp_path / 'out'}", "--model=padded_cnn", "--dataset=synthetic",
             "--num_images=2")
    out = capsys.readouterr().out
    assert out.startswith("no --workdir: fresh (random) init of --model=padded_cnn\n")
    assert re.search(r"^conv1 .*28x28x16", out, re.M) and re.search(r"^conv2 .*14x14x32", out, re.M)
    for name in ("kernels.png", "feature_maps_conv1.png", "feature_maps_conv2.png"):
        assert_png(tmp_path / "out" / name)


@pytest.mark.parametrize("kind", ["missing", "empty", "config_only"])
def test_feature_maps_workdir_without_a_trained_run_is_an_error(tmp_path, kind):
    workdir = tmp_path / "run"
    if kind != "missing":
        workdir.mkdir()
    if kind == "config_only":  # a run that never saved a checkpoint
        (workdir / "config.json").write_text(json.dumps(dict(model="padded_cnn", data=dict(
            num_classes=10, image_shape=[28, 28, 1]))))
    expected = {"missing": "no such directory", "empty": "config.json not found",
                "config_only": "no checkpoint in"}[kind]
    with pytest.raises(FileNotFoundError, match=rf"^--workdir {re.escape(str(workdir))}.*{expected}"):
        run_main(feature_maps, f"--out_dir={tmp_path / 'out'}", f"--workdir={workdir}", "--dataset=synthetic")
    assert not (tmp_path / "out").exists()  # nothing plotted from random weights


def test_conv_outputs_capture_every_conv_block():
    import jax

    from cnnjax import models

    model = models.create("conv_autoencoder")
    x = np.zeros((1, 8, 8, 1), np.float32)
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)  # no (slow to compile) random init
    rng = np.random.default_rng(0)
    variables = jax.tree.map(lambda s: rng.normal(0, 0.3, s.shape).astype(s.dtype), shapes)
    captured, y = feature_maps.conv_outputs(model, variables, x)
    assert [(name, out.shape) for name, _, out in captured] == [
        ("enc1", (1, 4, 4, 16)), ("enc2", (1, 2, 2, 32)), ("dec1", (1, 4, 4, 16)), ("dec2", (1, 8, 8, 1))]
    assert y.shape == x.shape


# --------------------------------------------------------------------------- plots


def test_plots_write_pngs(tmp_path):
    rows = [dict(epoch=e, train_loss=1 / e, test_loss=None if e == 2 else 1.1 / e, train_accuracy=0.8 + e / 100,
                 test_accuracy=0.79 + e / 100) for e in (1, 2, 3)]
    paths = [
        plots.plot_curves(rows, str(tmp_path / "curves.png")),
        plots.plot_confusion(np.array([[5, 1], [0, 0]]), ["a", "b"], str(tmp_path / "sub" / "conf.png"), "cm"),
        plots.plot_scatter([dict(config="x", params=1e3, flops=2e4, final_acc_mean=0.8, final_acc_std=0.01),
                            dict(config="y", params=1e5, flops=3e6, final_acc_mean=0.9, final_acc_std=None),
                            dict(config="z", params=None, flops=None, final_acc_mean=1.0)], str(tmp_path / "scatter.png")),
        plots.plot_loss_curve([0, 1, 2], [1.0, 0.1, 0.0], str(tmp_path / "loss.png")),
        plots.plot_kernels(np.random.default_rng(0).normal(size=(3, 3, 2, 5)), str(tmp_path / "k.png")),
        plots.image_grid([np.zeros((4, 4)), np.ones((4, 4, 3))], ["a", "b"], str(tmp_path / "grid.png")),
    ]
    for path in paths:
        assert_png(path)


def _labelled_ticks(axis):
    """The non-empty labels of ``axis``'s major ticks inside its view."""
    lo, hi = sorted(axis.get_view_interval())
    locs = [v for v in axis.get_majorticklocs() if lo <= v <= hi]
    fmt = axis.get_major_formatter()
    fmt.set_locs(locs)
    return [fmt(v) for v in locs if fmt(v)]


@pytest.mark.parametrize("xs", [[4.4e4], [2.1e4, 3e4, 6.2e4], [2e4, 6e5], [1.5e4, 1.4e6], [1e3, 4e5, 2e6]],
                         ids=["one-point", "half-decade", "1.5-decades", "2-decades", "3-decades"])
def test_scatter_log_axis_fits_the_data_with_labelled_ticks(tmp_path, figures, xs):
    points = [dict(config=f"c{i}", params=x / 20, flops=x, final_acc_mean=0.8 + i / 100, final_acc_std=0.01)
              for i, x in enumerate(xs)]
    plots.plot_scatter(points, str(tmp_path / "sweep.png"))  # launch.report's accuracy vs params / FLOPs
    for ax, scale in zip(figures[0].axes, (1 / 20, 1)):
        lo, hi = ax.get_xlim()
        assert min(xs) * scale / 2.2 < lo < min(xs) * scale and max(xs) * scale < hi < max(xs) * scale * 2.2
        assert len(_labelled_ticks(ax.xaxis)) >= 2, _labelled_ticks(ax.xaxis)  # no half-empty panel


def test_curves_of_one_epoch_have_integer_ticks_and_the_run_name(tmp_path, figures):
    rows = [dict(epoch=1, train_loss=0.5, val_loss=0.6, train_accuracy=0.8, val_accuracy=0.75)]
    plots.plot_curves(rows, str(tmp_path / "curves.png"), title="workdirs/lenet5: lenet5")
    fig = figures[0]
    assert fig._suptitle.get_text() == "workdirs/lenet5: lenet5"
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert (lo, hi) == (0.5, 1.5)
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks == [1.0]


# --------------------------------------------------------------------------- bad input: one line, exit 2


def test_bad_inputs_exit_with_one_line_error(tmp_path):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tiny)
    out = f"--out_dir={tmp_path}"
    cases = [  # (module, args, expected text in the error line)
        ("edge_detection", [f"--image={tmp_path / 'missing.png'}"], "no such image file"),
        ("edge_detection", [f"--image={tiny}"], "does not fit"),  # 3x3 kernel, 2x2 image, valid padding
        ("edge_detection", ["--filters=laplacian,blurry"], "known filters: laplacian"),
        ("conv_arithmetic", ["--input_size=2", "--kernel_size=5", "--padding=1"], "does not fit"),
        ("feature_maps", [f"--workdir={tmp_path / 'typo'}"], f"--workdir {tmp_path / 'typo'}: no such directory"),
    ]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    procs = [subprocess.Popen([sys.executable, "-m", f"experiments.{module}", out, *args], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for module, args, _ in cases]  # concurrently: each pays the JAX start-up
    for (module, args, expected), proc in zip(cases, procs):
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (module, args, stdout, stderr)
        lines = stderr.strip().splitlines()
        assert lines and lines[-1].startswith("error:") and expected in lines[-1], (module, args, stderr)
        assert "Traceback" not in stderr
    assert not os.path.exists(tmp_path / "edge_detection.png")
