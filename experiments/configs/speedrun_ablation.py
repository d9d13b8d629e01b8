r"""Study: what each trick of the 91.5% speedrun recipe buys (airbench's ablation table).

  python -m launch.sweep --config=experiments/configs/speedrun_ablation.py \
      --out=results/speedrun_ablation --cpus_per_run=1

The recipe speedrun.py:0.915 (airbench28_m, batch 64, 3-epoch budget) trained for its whole
budget (no stop at the target, so every row is compared at the same number of epochs), then the
same with one trick removed at a time, seeds 0-4; results.md pairs every row with the full recipe.
"""
from cnnjax.train import config
from experiments.configs import speedrun

#: the recipe as it is, spelled out in every key the other rows change (the report's baseline must
#: match this row alone: a baseline of fewer keys is compared within each value of the others)
FULL = {k: speedrun.TRICKS[k] for k in ("whiten_init", "ema_decay", "tta", "label_smoothing", "augment", "schedule")}
WITHOUT = {
    "no whitening init": {"whiten_init": False},
    "no EMA": {"ema_decay": 0.0},
    "no test-time augmentation": {"tta": "none"},
    "no label smoothing": {"label_smoothing": 0.0},
    "no flips": {"augment": "none"},
    "cosine instead of one-cycle": {"schedule": "cosine"},
}


def get_config():  # evaluated after every epoch (eval_delay=0) for the learning curves
    return config.config_dict(**dict(speedrun.RECIPES["0.915"], target_accuracy=0.0, eval_delay=0))


BASELINE = FULL


def get_sweep():
    return config.product(config.sweep("seed", [0, 1, 2, 3, 4]), [FULL, *WITHOUT.values()])
