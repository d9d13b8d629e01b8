r"""Study, issue 37 point 5: do convolution's priors buy robustness over a fully connected net?

  python -m launch.sweep --config=experiments/configs/robustness_course.py --out=results/robustness_course

The course's nets mlp (784-256-128-10), lenet5, padded_cnn, vgg_bn and resnet20, trained the same
way, x seeds 0, 1, 2: 15 runs.  The sweep's last step (REPORT, launch.robustness) scores each
run's validation-selected checkpoint on the first 1,000 test images: clean accuracy, the mean
accuracy over the 15 MNIST-C corruptions at MNIST-C's own severities, accuracy against PGD
(L-infinity, 10 steps, random start; on the first 300 of those images) at eps 1, 2, 4, 8 (pixel
units of 255), and ECE / NLL before
and after temperature scaling fitted on the validation split; OUT/robustness.{md,csv,png}, with
every net's difference to the MLP paired by seed.

SMALL BY DEFAULT, to fit the shared 2-core CPU (run while other jobs kept its load average at 10-15):
the claims' training (claims_base.py: Adam 1e-3, batch 128, label smoothing 0.1) on the first 6,000
training images (600 held out for validation) for 2 epochs, the runs' own test accuracy on the
first 2,000 test images.  ``--config.num_train=0 --config.num_test=0 --config.epochs=15`` is the
full-size study.

Runtime and results: docs/robustness.md.
"""
from cnnjax.train import config
from experiments.configs import claims_base

SCORE = {"kind": "robust", "test_images": 1000, "attack_images": 300, "eps": [1, 2, 4, 8], "steps": 10, "seed": 0}
REPORT = "launch.robustness"
BASELINE = {"model": "mlp"}


def get_config():
    cfg = claims_base.small_config()
    cfg.num_train, cfg.num_test, cfg.epochs = 6000, 2000, 2
    return cfg


def get_sweep():
    return config.product(claims_base.SEEDS, config.sweep("model", ["mlp", "lenet5", "padded_cnn", "vgg_bn",
                                                                    "resnet20"]))
