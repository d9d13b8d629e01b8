"""The CLIs that use a finished run -- experiments.predict, .export, .explain -- on one tiny trained run:
results against the in-memory model, every bad-input case (one error line, the documented exit)."""
import csv
import io
import json
import os

import numpy as np
import pytest
from tests.commands import cli


def listing(path):
    return sorted((root, tuple(sorted(files))) for root, _, files in os.walk(path))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A one-epoch padded_cnn run on a few synthetic 28x28 greyscale images (seconds)."""
    workdir = tmp_path_factory.mktemp("run")
    proc = cli("train", "--config.dataset=synthetic", "--config.num_train=128", "--config.num_test=64",
               "--config.batch_size=64", "--config.epochs=1", f"--workdir={workdir}", "--config.progress=none")
    assert proc.returncode == 0, proc.stderr
    return workdir


@pytest.fixture(scope="module")
def trained(run_dir):
    from cnnjax.interpret import inference
    return inference.load_run(str(run_dir))


@pytest.fixture(scope="module")
def pngs(tmp_path_factory, trained):
    """Six synthetic test images as PNG files (lossless at the run's size) and their arrays."""
    from PIL import Image

    from cnnjax import data
    images = data.synthetic(num_train=8, num_test=6).test_images
    folder = tmp_path_factory.mktemp("pngs")
    (folder / "sub").mkdir()
    paths = []
    for i, im in enumerate(images):
        path = folder / ("sub" if i >= 4 else "") / f"img{i}.png"
        Image.fromarray(im[..., 0], "L").save(path)
        paths.append(str(path))
    return folder, paths, images


# --------------------------------------------------------------------------- predict


def test_predict_json_gives_the_in_memory_model_probabilities(run_dir, trained, pngs):
    import jax
    folder, paths, images = pngs
    proc = cli("predict", f"--workdir={run_dir}", "--format=json", "--top_k=3", "--batch_size=4", str(folder))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [o["file"] for o in out] == sorted(paths)  # a directory's files, recursively, sorted
    logits = trained.model.apply(trained.variables, trained.normalize(images))
    want = np.asarray(jax.nn.softmax(logits, -1))
    for o in out:
        i = paths.index(o["file"])
        top = np.argsort(-want[i])[:3]
        assert [p["index"] for p in o["predictions"]] == list(top)
        assert [p["class"] for p in o["predictions"]] == [trained.class_names[j] for j in top]
        np.testing.assert_allclose([p["probability"] for p in o["predictions"]], want[i, top], rtol=1e-5, atol=1e-6)


def test_predict_table_and_csv(run_dir, trained, pngs):
    _, paths, _ = pngs
    table = cli("predict", f"--workdir={run_dir}", "--top_k=2", *paths[:2])
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert [line.split()[0] for line in lines] == paths[:2] and len(lines[0].split()) == 5
    rows = list(csv.reader(io.StringIO(cli("predict", f"--workdir={run_dir}", "--format=csv", "--top_k=2",
                                           paths[0]).stdout)))
    assert rows[0] == ["file", "class_1", "probability_1", "class_2", "probability_2"]
    assert rows[1][0] == paths[0] and rows[1][1] in trained.class_names and 0 < float(rows[1][2]) <= 1
    assert rows[1][1] == lines[0].split()[1]


def test_predict_names_each_bad_file_and_predicts_the_others(run_dir, pngs, tmp_path):
    from PIL import Image
    _, paths, _ = pngs
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated = tmp_path / "cut.png"
    data = open(paths[0], "rb").read()
    truncated.write_bytes(data[:len(data) // 2])
    colour = tmp_path / "colour.png"
    Image.fromarray(np.full((40, 30, 3), 90, np.uint8), "RGB").save(colour)
    missing = tmp_path / "missing.png"
    before = listing(run_dir)
    proc = cli("predict", f"--workdir={run_dir}", paths[0], str(text), str(missing), str(truncated), str(colour),
               paths[1])
    assert proc.returncode == 1, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [paths[0], paths[1]]
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("error: ") for line in errors), proc.stderr
    assert f"error: {missing}: no such file or directory" in errors
    assert f"error: {text}: not an image Pillow can read" in errors
    assert any(line.startswith(f"error: {truncated}: truncated or corrupt image") for line in errors)
    assert (f"error: {colour}: a colour (3 channels) image, the run was trained on greyscale (1 channel) images "
            f"(--convert_channels converts it)") in errors
    assert listing(run_dir) == before  # nothing written
    converted = cli("predict", f"--workdir={run_dir}", "--convert_channels", str(colour))
    assert converted.returncode == 0 and converted.stdout.startswith(str(colour)), converted.stderr


@pytest.mark.parametrize("case", ["empty", "config_only", "missing", "all_bad", "top_k", "no_files"])
def test_predict_refusals_are_one_line_exit_2(run_dir, pngs, tmp_path, case):
    _, paths, _ = pngs
    workdir, files, extra = tmp_path / "w", [paths[0]], []
    if case == "empty":
        workdir.mkdir()
    elif case == "config_only":  # started, never finished: config and data info, no summary
        workdir.mkdir()
        for name in ("config.json", "data.json"):
            if (run_dir / name).exists():
                (workdir / name).write_bytes((run_dir / name).read_bytes())
    elif case in ("all_bad", "top_k", "no_files"):
        workdir = run_dir
        files = {"all_bad": [str(tmp_path / "nothing.png")], "top_k": files, "no_files": []}[case]
        extra = ["--top_k=11"] if case == "top_k" else []
    before = listing(tmp_path), listing(run_dir)
    proc = cli("predict", f"--workdir={workdir}", *extra, *files)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    expected = {"empty": "has no finished training", "config_only": "has no finished training",
                "missing": "no such directory", "all_bad": "no image could be classified",
                "top_k": "--top_k must be in [1, 10]", "no_files": "no image files or directories given"}[case]
    assert expected in last, last
    if case in ("empty", "config_only", "missing", "top_k", "no_files"):
        assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == "" and (listing(tmp_path), listing(run_dir)) == before


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("fmt", ["stablehlo", "onnx"])
def test_export_writes_a_file_that_reloads_to_the_run_logits(run_dir, trained, pngs, tmp_path, fmt):
    from cnnjax.weights import export
    _, _, images = pngs
    out = tmp_path / f"model.{fmt}"
    proc = cli("export", f"--workdir={run_dir}", f"--format={fmt}", f"--out={out}")
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and "classes: 0=" in proc.stdout
    blob = out.read_bytes()
    got = (export.run_stablehlo if fmt == "stablehlo" else export.run_onnx)(blob, images)
    want = np.asarray(trained.model.apply(trained.variables, trained.normalize(images)))
    assert export.relative_error(got, want) <= 1e-5
    again = cli("export", f"--workdir={run_dir}", f"--format={fmt}", f"--out={out}")  # never overwritten silently
    assert again.returncode == 2 and again.stderr.strip() == f"error: --out {out} already exists (--overwrite replaces it)"
    assert out.read_bytes() == blob


def test_export_of_an_unfinished_workdir_writes_nothing(tmp_path):
    (tmp_path / "w").mkdir()
    proc = cli("export", f"--workdir={tmp_path / 'w'}", "--format=onnx", f"--out={tmp_path / 'm.onnx'}")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "has no finished training" in proc.stderr and not (tmp_path / "m.onnx").exists()


# --------------------------------------------------------------------------- explain


def test_explain_writes_a_figure_per_method_and_image_and_a_comparison(run_dir, trained, pngs, tmp_path):
    """Each figure the CLI writes is, pixel for pixel, the figure of the map computed directly:
    explain.attribute of the run's model on the chosen test images for the class it predicts
    (the documented settings: black baseline and fill, Grad-CAM on the last conv layer), drawn by
    explain_plots with the caption "true <class>, predicted <class> (<probability>)"; the
    comparison likewise; the maps of different methods differ."""
    from PIL import Image

    from cnnjax.train import experiment
    from cnnjax.interpret import attribution as explain, attribution_plots as explain_plots, inference
    _, paths, _ = pngs
    out = tmp_path / "figs"
    proc = cli("explain", f"--workdir={run_dir}", f"--out={out}", "--indices=0,5")
    assert proc.returncode == 0, proc.stderr
    for method in explain.METHODS:
        assert sorted(os.listdir(out / method)) == ["test0.png", "test5.png"]

    ds = experiment.load_data(trained.config)
    images, truth = ds.test_images[[0, 5]], ds.test_labels[[0, 5]]
    probs = np.asarray(inference.make_predict_fn(trained)(images))
    predicted = probs.argmax(1)
    captions = [f"true {trained.class_names[t]}, predicted {trained.class_names[p]} ({probs[i, p]:.2f})"
                for i, (t, p) in enumerate(zip(truth, predicted))]
    black = explain.black_baseline(trained.mean, trained.std)
    settings = {"integrated_gradients": {"baseline": black}, "occlusion": {"fill": black},
                "grad_cam": {"layer": "conv2"}}
    x = trained.normalize(images)
    heats = {m: explain.pixel_map(explain.attribute(m, trained.model, trained.variables, x, predicted,
                                                    **settings.get(m, {})), m) for m in explain.METHODS}
    shown = images.astype(np.float32) / 255.0
    pixels = lambda path: np.asarray(Image.open(path).convert("RGB"))
    for m in explain.METHODS:
        for i, name in enumerate(["test0", "test5"]):
            want = explain_plots.plot_attribution(shown[i], heats[m][i], m + (" on conv2" if m == "grad_cam" else ""),
                                                  captions[i], str(tmp_path / "want" / m / f"{name}.png"))
            np.testing.assert_array_equal(pixels(out / m / f"{name}.png"), pixels(want), err_msg=f"{m} {name}")
    want = explain_plots.plot_comparison(shown, heats, captions, str(tmp_path / "want" / "comparison.png"),
                                         f"padded_cnn (epoch {trained.epoch}): what it looks at")
    np.testing.assert_array_equal(pixels(out / "comparison.png"), pixels(want))
    for a, b in zip(explain.METHODS, explain.METHODS[1:]):  # the figures show different maps
        assert not np.allclose(heats[a], heats[b]), (a, b)
        assert pixels(out / a / "test0.png").tobytes() != pixels(out / b / "test0.png").tobytes(), (a, b)

    files = cli("explain", f"--workdir={run_dir}", f"--out={tmp_path / 'f2'}", "--methods=occlusion,grad_cam",
                "--layer=conv1", paths[0])
    assert files.returncode == 0, files.stderr
    assert sorted(os.listdir(tmp_path / "f2")) == ["comparison.png", "grad_cam", "occlusion"]
    assert os.listdir(tmp_path / "f2" / "grad_cam") == ["img0.png"]
    one = pngs[2][:1]  # the image file's pixels: its caption names the file, Grad-CAM runs on --layer
    p = np.asarray(inference.make_predict_fn(trained)(one))[0]
    cam = explain.pixel_map(explain.grad_cam(trained.model, trained.variables, trained.normalize(one), p.argmax()[None],
                                             layer="conv1"), "grad_cam")
    want = explain_plots.plot_attribution(one[0].astype(np.float32) / 255.0, cam[0], "grad_cam on conv1",
                                          f"img0: predicted {trained.class_names[p.argmax()]} ({p.max():.2f})",
                                          str(tmp_path / "want2.png"))
    np.testing.assert_array_equal(pixels(tmp_path / "f2" / "grad_cam" / "img0.png"), pixels(want))


@pytest.mark.parametrize("args, message", [
    (["--layer=fc"], "layer 'fc' is not a conv layer of PaddedCNN on 28x28x1 images; conv layers: conv1, conv2"),
    (["--methods=saliency"], "--methods: unknown method 'saliency'; methods: gradients, smoothgrad,"),
    (["--indices=64"], "--indices must lie in [0, 64) (the test set), got 64"),
    (["NOFILE"], "NOFILE: no such file"),
])
def test_explain_bad_input_is_one_line_and_writes_nothing(run_dir, tmp_path, args, message):
    out = tmp_path / "figs"
    proc = cli("explain", f"--workdir={run_dir}", f"--out={out}", *args)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr
    assert not out.exists()


def test_explain_never_writes_into_a_directory_with_files(run_dir, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    proc = cli("explain", f"--workdir={run_dir}", f"--out={tmp_path}")
    assert proc.returncode == 2 and "already holds files (--overwrite writes into it)" in proc.stderr
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_export_checks_a_folder_run_on_its_own_images_at_its_size(tmp_path):
    """experiments.export compares the exported model with JAX on the run's test images: for an
    image folder trained at another size, those read with the run's size and channels."""
    import types
    import numpy as np
    from cnnjax.train import config, experiment
    from experiments import export
    from tests.datafiles import write_image_folder
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 20, 20, 3), dtype=np.uint8)
    write_image_folder(tmp_path / "photos", {"train": (images, [0, 1] * 4), "test": (images[:4], [0, 1, 0, 1])},
                       ["cat", "dog"])
    cfg = config.TrainConfig(dataset="folder", data_dir=str(tmp_path / "photos"), image_size=12, channels=1,
                             data_cache_dir="", validation_size=0)
    got = export.check_images(types.SimpleNamespace(config=cfg, image_shape=(12, 12, 1)), n=3)
    np.testing.assert_array_equal(got, experiment.load_data(cfg).test_images[:3])
