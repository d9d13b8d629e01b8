"""The course-claim experiments (docs/experiments.md): PaddedCNN's padding/stride options change
exactly what they say, the claim study files (experiments/configs/claim_*.py) expand to the
intended grids (no training), and experiments.summary --config.model_options shows the
3e9-weight dense layer without allocating it."""
import importlib.util
import os
import subprocess
import sys

import pytest

from cnnjax import models, summary
from cnnjax.train import config
from launch import study as study_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rows(name="padded_cnn", **options):
    s = summary.summarize(models.create(name, **options), (28, 28, 1))
    return s, {r.name: r for r in s.rows}


def run_module(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=timeout)


# --------------------------------------------------------------------------- padding / stride options

# conv weights are 416 (5*5*1*16+16) and 12,832 (5*5*16*32+32) in every variant; only the dense
# layer (H*W*32*10 + 10) follows the spatial size.
PINNED = {
    (2, 1): (28_938, [(28, 28, 16), (14, 14, 16), (14, 14, 32), (7, 7, 32)]),  # dense 1568->10: 15,690
    (0, 1): (18_378, [(24, 24, 16), (12, 12, 16), (8, 8, 32), (4, 4, 32)]),    # dense 512->10: 5,130
    (2, 2): (16_138, [(14, 14, 16), (7, 7, 16), (7, 7, 32), (3, 3, 32)]),      # dense 288->10: 2,890
    (0, 2): (13_578, [(12, 12, 16), (6, 6, 16), (2, 2, 32), (1, 1, 32)]),      # dense 32->10: 330
}


@pytest.mark.parametrize("padding,stride", sorted(PINNED))
def test_padding_and_stride_pinned_params_and_shapes(padding, stride):
    s, r = rows(padding=padding, stride=stride)
    params, shapes = PINNED[(padding, stride)]
    assert s.total_params == params
    assert [r[n].output_shape for n in ("conv1", "pool1", "conv2", "pool2")] == shapes
    assert r["conv1"].params == 416 and r["conv2"].params == 12_832
    h, w, c = shapes[-1]
    assert r["fc"].params == h * w * c * 10 + 10


def test_defaults_are_the_old_padded_cnn():
    default, _ = rows()
    explicit, _ = rows(padding=2, stride=1)
    assert default.rows == explicit.rows
    for name, params in (("separable_cnn", 17_050), ("dilated_cnn", 20_746), ("grouped_cnn", 19_338)):
        assert summary.summarize(models.create(name), (28, 28, 1)).total_params == params


def test_padding_keeps_size_and_stride_halves_it():
    _, r = rows(padding=2)
    assert r["conv1"].output_shape[:2] == (28, 28)            # 5x5, pad 2: same size
    assert r["conv2"].output_shape[:2] == r["pool1"].output_shape[:2]
    _, r = rows(padding=0)
    assert r["conv1"].output_shape[:2] == (24, 24)            # 28 + 0 - 5 + 1
    _, r = rows(stride=2)
    assert r["conv1"].output_shape[:2] == (14, 14)            # floor((28 + 4 - 5) / 2) + 1
    assert r["conv1"].jump == (2, 2)


def test_padding_reaches_every_5x5_conv2_and_dilated_keeps_same():
    for name in ("separable_cnn", "grouped_cnn"):
        _, r = rows(name, padding=0)
        assert r["conv2"].output_shape[:2] == (8, 8)
    _, r = rows("dilated_cnn", padding=0)
    assert r["conv1"].output_shape[:2] == (24, 24) and r["conv2"].output_shape[:2] == (12, 12)


# --------------------------------------------------------------------------- claim studies (no training)


def study(name, **base_overrides):
    """The study file experiments/configs/NAME.py, loaded as launch.sweep loads it, with
    ``base_overrides`` applied to its base as --config.KEY=VALUE would."""
    file = os.path.join(REPO, "experiments", "configs", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return study_lib.load(file, config.apply(module.get_config(), base_overrides), [], list(base_overrides))


def names(st):
    return [r.name for r in st.runs]


SMALL = {"model": "padded_cnn", "dataset": "fashion_mnist", "num_train": 10000, "epochs": 3, "batch_size": 128,
         "learning_rate": 1e-3, "optimizer": "adam"}


def small(cfg):
    """``cfg`` has the claims' small budget (any model)."""
    return {k: v for k, v in SMALL.items() if k != "model"}.items() <= config.to_dict(cfg).items()


def test_single_axis_claim_studies_expand_to_their_grids():
    expected = {
        "claim_relu_vs_sigmoid": ("activation", ["relu", "sigmoid", "tanh"]),
        "claim_max_vs_avg_pool": ("pool", ["max", "avg"]),
    }
    for name, (option, values) in expected.items():
        st = study(name)
        assert names(st) == [f"model_options.{option}={v},seed={s}" for s in (0, 1, 2) for v in values]
        for r in st.runs:
            assert r.config.model == "padded_cnn" and small(r.config)
            assert r.config.model_options == {option: r.overrides[f"model_options.{option}"]}


def test_padding_stride_study_crosses_padding_and_stride():
    st = study("claim_padding_stride")
    assert len(st.runs) == 12
    assert {(r.config.model_options["padding"], r.config.model_options["stride"]) for r in st.runs} == {
        (2, 1), (0, 1), (2, 2), (0, 2)}
    assert st.runs[1].config.model_options == {"padding": 2, "stride": 2}
    assert all(r.config.model == "padded_cnn" and small(r.config) for r in st.runs)


def test_mlp_vs_cnn_is_two_cnns_plus_mlp_times_hidden():
    st = study("claim_mlp_vs_cnn")
    assert len(st.runs) == 12 and len(set(names(st))) == 12
    configs = {(r.config.model, r.config.model_options.get("hidden")) for r in st.runs}
    assert configs == {("seed_net", None), ("padded_cnn", None), ("mlp", (35, 35)), ("mlp", (256, 128))}
    assert {n.rsplit(",seed=", 1)[0] for n in names(st)} == {
        "model=seed_net", "model=padded_cnn", "model=mlp,model_options.hidden=35x35",
        "model=mlp,model_options.hidden=256x128"}
    mlp = next(r for r in st.runs if r.config.model == "mlp")
    assert mlp.config.model_options == {"hidden": (35, 35)}
    assert all(small(r.config) for r in st.runs)
    # a --config.* override reaches every run
    assert all(r.config.epochs == 1 for r in study("claim_mlp_vs_cnn", epochs=1).runs)


def test_mlp_vs_cnn_cli_dry_run_writes_nothing_and_refuses_a_swept_key(tmp_path):
    out = tmp_path / "o"
    file = "experiments/configs/claim_mlp_vs_cnn.py"
    r = run_module("-m", "launch.sweep", f"--config={file}", "--config.epochs=1", f"--out={out}", "--dry_run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"12 runs in {out}") and r.stdout.count(" new ") == 12
    assert not out.exists()
    r = run_module("-m", "launch.sweep", f"--config={file}", "--config.model=mlp", f"--out={out}", "--dry_run")
    assert r.returncode == 2 and r.stderr.startswith("error: --config.model: ") and "sweeps that setting" in r.stderr
    assert not out.exists()


def test_lenet_vs_padded_small_base_is_what_the_docs_ran():
    st = study("lenet_vs_padded", num_train=10000, epochs=3)
    assert names(st) == [f"model={m},seed={s}" for s in (0, 1, 2) for m in ("lenet5", "seed_net", "padded_cnn")]
    assert all(small(r.config) for r in st.runs)


# --------------------------------------------------------------------------- summary CLI

HUGE = r'''
import resource, sys
# before experiments.summary defines --config: config_flags reads its overrides from sys.argv
sys.argv = ["summary", "--config.model=mlp", "--config.model_options.hidden=(1000, 100)", "--input_shape=1000,1000,3"]
from absl import flags
from cnnjax import models, summary
from experiments import summary as cli
summary.summarize(models.create("padded_cnn"), (28, 28, 1))  # JAX's own start-up, not counted
flags.FLAGS(sys.argv)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cli.main(["summary"])
print("GROWN_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
'''


def test_summary_model_options_on_a_megapixel_image_allocates_nothing():
    r = run_module("-c", HUGE)
    assert r.returncode == 0, r.stderr
    fc1 = next(line for line in r.stdout.splitlines() if line.startswith("fc1"))
    assert fc1.split()[:4] == ["fc1", "Dense", "1000", "3,000,001,000"]   # 1000*1000*3*1000 + 1000
    grown_mb = int(r.stdout.split("GROWN_KB")[1]) / 1024
    assert grown_mb < 200, f"summary allocated {grown_mb:.0f} MB"


def test_summary_cli_model_options_and_bad_option():
    r = run_module("-m", "experiments.summary", "--config.model_options.padding=0", "--config.model_options.stride=2")
    assert r.returncode == 0, r.stderr
    assert "12x12x16" in r.stdout and "total params: 13,578" in r.stdout
    r = run_module("-m", "experiments.summary", "--config.model=padded_cnn", "--config.model_options.widths=7")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("error: experiments/configs/default.py: config.model_options: padded_cnn: widths must be 2 positive integers")
    r = run_module("-m", "experiments.summary", "--config.model=mlp", "--config.model_options.hidden=1000")
    assert r.returncode == 0 and "784,784" not in r.stdout and "785,000" in r.stdout  # one 1000-unit layer
    r = run_module("-m", "experiments.summary", "--epochs=3")  # a training flag means nothing here
    assert r.returncode == 2 and r.stderr.strip() == "error: Unknown command line flag 'epochs' (see --help)"
