"""The course-claim experiments (docs/experiments.md): PaddedCNN's padding/stride options change
exactly what they say, the claim studies expand to the intended grids (no training), and
experiments.summary --model_options shows the 3e9-weight dense layer without allocating it."""
import os
import subprocess
import sys

import pytest

from cnnjax import models, summary
from launch import claim_max_vs_avg_pool, claim_mlp_vs_cnn, claim_padding_stride, claim_relu_vs_sigmoid
from launch import lenet_vs_padded
from launch import sweep

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


# --------------------------------------------------------------------------- launch scripts (no training)

def names(stages):
    return [r.name for r in sweep.expand(stages)]


def settings(stages):
    return [dict(r.settings) for r in sweep.expand(stages)]


SMALL = {"dataset": "fashion_mnist", "num_train": "10000", "epochs": "3"}


def test_single_axis_claim_studies_expand_to_their_grids():
    expected = {
        claim_relu_vs_sigmoid: ("activation", ["relu", "sigmoid", "tanh"]),
        claim_max_vs_avg_pool: ("pool", ["max", "avg"]),
    }
    for module, (axis, values) in expected.items():
        got = names(module.stages())
        assert got == [f"{axis}={v},seed={s}" for s in (0, 1, 2) for v in values]
        for st in settings(module.stages()):
            assert st["model"] == "padded_cnn" and SMALL.items() <= st.items()


def test_padding_stride_study_crosses_padding_and_stride():
    runs = sweep.expand(claim_padding_stride.stages())
    assert len(runs) == 12
    assert {(dict(r.settings)["padding"], dict(r.settings)["stride"]) for r in runs} == {
        ("2", "1"), ("0", "1"), ("2", "2"), ("0", "2")}
    argv = runs[1].argv("W")
    assert "--model=padded_cnn" in argv and "--model_options=padding=2,stride=2" in argv


def test_mlp_vs_cnn_is_two_stages_in_one_sweep():
    stages = claim_mlp_vs_cnn.stages()
    got = names(stages)
    assert len(got) == 12 and len(set(got)) == 12
    configs = {n.rsplit(",seed=", 1)[0] for n in got}
    assert configs == {"model=seed_net", "model=padded_cnn", "model=mlp,hidden=35%3A35",
                       "model=mlp,hidden=256%3A128"}
    mlp = [r for r in sweep.expand(stages) if dict(r.settings)["model"] == "mlp"]
    assert "--model_options=hidden=35:35" in mlp[0].argv("W")
    assert all(SMALL.items() <= st.items() for st in settings(stages))
    # --base is merged over the study's base, in both stages
    assert all(st["epochs"] == "1" for st in settings(claim_mlp_vs_cnn.stages("epochs=1")))


def test_mlp_vs_cnn_cli_dry_run_lists_both_stages_and_writes_nothing(tmp_path):
    out = tmp_path / "o"
    r = run_module("-m", "launch.claim_mlp_vs_cnn", f"--out={out}", "--dry_run", "--shard=2/3", "--base=epochs=1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("4 runs (shard 2/3 of 12)")
    assert "--epochs=1" in r.stdout.splitlines()[-1]
    assert not out.exists()
    r = run_module("-m", "launch.claim_mlp_vs_cnn", f"--out={out}", "--dry_run", "--grid=model=mlp")
    assert r.returncode == 2 and r.stderr.startswith("error: this study's grids are fixed")


def test_lenet_vs_padded_small_base_is_what_the_docs_ran():
    stage = sweep.make_stage(lenet_vs_padded.GRID, "num_train=10000,epochs=3", lenet_vs_padded.SEEDS,
                             lenet_vs_padded.BASE)
    assert names([stage]) == [f"model={m},seed={s}" for s in (0, 1, 2) for m in ("lenet5", "seed_net", "padded_cnn")]
    assert all(SMALL.items() <= st.items() for st in settings([stage]))


# --------------------------------------------------------------------------- summary CLI

HUGE = r'''
import resource
from absl import flags
from cnnjax import models, summary
from experiments import summary as cli
summary.summarize(models.create("padded_cnn"), (28, 28, 1))  # JAX's own start-up, not counted
flags.FLAGS(["summary", "--model=mlp", "--model_options=hidden=1000:100", "--input_shape=1000,1000,3"])
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
    r = run_module("-m", "experiments.summary", "--model_options=padding=0,stride=2")
    assert r.returncode == 0, r.stderr
    assert "12x12x16" in r.stdout and "total params: 13,578" in r.stdout
    r = run_module("-m", "experiments.summary", "--model=padded_cnn", "--model_options=widths=7")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("error: model 'padded_cnn' cannot be built")
    r = run_module("-m", "experiments.summary", "--model=mlp", "--model_options=hidden=1000")
    assert r.returncode == 0 and "784,784" not in r.stdout and "785,000" in r.stdout  # one 1000-unit layer
    r = run_module("-m", "experiments.summary", "--epochs=3")  # a training flag means nothing here
    assert r.returncode == 2 and r.stderr.strip() == "error: Unknown command line flag 'epochs' (see --help)"
