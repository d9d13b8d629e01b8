r"""Study, issue 37 point 4: which design choices give a CNN its shift invariance back?

  python -m launch.sweep --config=experiments/configs/antialias_shift.py --out=results/antialias_shift

padded_cnn x pooling {max, avg, blurmax (Zhang 2019's anti-aliased max pool, [1, 2, 1] blur)} x head
{flatten (dense on the 7x7x32 map), gap (global average pooling, then dense 32 -> 10)} x training
augmentation {none, crop (random translation up to 4 px, zero fill: the test shifts' own kind)} x
seeds 0, 1, 2: 36 runs.  The sweep's last step (REPORT, launch.robustness) scores each run's
validation-selected checkpoint on the first 1,000 test images shifted 0..4 px (mean over up, down,
left, right) -- accuracy, consistency with the unshifted prediction, and Zhang's consistency (two
random shifts in [-4, 4]^2 per image) -- and writes OUT/robustness.{md,csv,png} next to
launch.report's OUT/results.{md,csv,png}.

SMALL BY DEFAULT, to fit the shared 2-core CPU: the claims' budget (claims_base.py: the first
10,000 training images, 1,000 held out for validation, Adam 1e-3, batch 128, label smoothing 0.1)
with 2 epochs.  ``--config.num_train=0 --config.epochs=15`` is the full-size study.

Runtime and results: docs/robustness.md.
"""
from cnnjax.train import config
from experiments.configs import claims_base

SCORE = {"kind": "shift", "test_images": 1000, "max_shift": 4, "seed": 0}
REPORT = "launch.robustness"
BASELINE = {"model_options.pool": "max", "model_options.head": "flatten", "augment": "none"}


def get_config():
    cfg = claims_base.small_config()
    cfg.epochs, cfg.crop_padding = 2, 4
    return cfg


def get_sweep():
    return config.product(claims_base.SEEDS, config.sweep("model_options.pool", ["max", "avg", "blurmax"]),
                          config.sweep("model_options.head", ["flatten", "gap"]),
                          config.sweep("augment", ["none", "crop"]))
