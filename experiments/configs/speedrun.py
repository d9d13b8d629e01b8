"""Fashion-MNIST speedrun recipes (issue 15): ``--config=experiments/configs/speedrun.py:TARGET``.

One variant per target test accuracy; each trains from scratch and stops after the first
evaluation whose *validation* accuracy reaches the target (``target_accuracy``), then measures
the test set once.  ``python -m launch.speedrun --target=0.93 --seeds=5`` times them.

  0.915 (alias 91.5)  goal 15 s on 2 CPU cores: padded_cnn, Adam one-cycle (peak 4e-3),
                      batch 128, 8-epoch budget
  0.93  (alias 93)    goal 60 s: recipes.py's vgg_bn (60k params, BN, dropout 0.3; 93.70% test
                      after 20 epochs): Adam cosine 2e-3, batch 64, horizontal flips, label
                      smoothing 0.1, 20-epoch budget
  0.94  (alias 94)    goal 5 min: the same with vgg_bn widened to (32, 64), 30-epoch budget (untried)

First recipes from existing features; one short trial of 0.915 on a loaded machine (see the
comments at RECIPES).  None meets its time goal yet: the tuning, the small Airbench-style 28x28
models and the EMA / test-time augmentation / whitening-init options being added come later.
Common to all: 5,000 validation images held out of the 60,000 (chosen by the seed),
evaluation every epoch, a checkpoint only at the stop and at the end of the budget (one kept),
2,000-image evaluation batches.  The epoch budget sets the schedule's length: a run that stops
early stops part-way through it.
"""
from cnnjax import config

COMMON = dict(validation_size=5000, eval_every=1, eval_batch_size=2000, keep_checkpoints=1, progress="plain")
RECIPES = {
    # trials (seed 0, loaded machine), stop epoch / validation / test: as here 7 / 91.64% / 91.42%; with a
    # 6-epoch budget 5 / 91.66% / 91.21%; with label smoothing 0.1 and flips 7 / 91.54% / 90.93%; batch 64 at
    # 3e-3 7 / 91.50% / 91.46%.  The
    # validation split reads ~0.3-0.6 points above the test set here: stopping at 91.5% validation
    # leaves the test accuracy under it.
    "0.915": dict(COMMON, target_accuracy=0.915, model="padded_cnn", epochs=8, batch_size=128, optimizer="adam",
                  learning_rate=4e-3, schedule="onecycle", checkpoint_every=8),
    # recipes.py's vgg_bn (93.70% test after its 20 epochs), stopped at the target
    "0.93": dict(COMMON, target_accuracy=0.93, model="vgg_bn", epochs=20, batch_size=64, optimizer="adam",
                 learning_rate=2e-3, schedule="cosine", augment="flip", label_smoothing=0.1, checkpoint_every=20),
    # untried: vgg_bn widened, a longer budget
    "0.94": dict(COMMON, target_accuracy=0.94, model="vgg_bn", model_options={"widths": (32, 64)}, epochs=30,
                 batch_size=64, optimizer="adam", learning_rate=2e-3, schedule="cosine", augment="flip",
                 label_smoothing=0.1, checkpoint_every=30),
}
ALIASES = {"91.5": "0.915", "93": "0.93", "94": "0.94"}
#: each recipe's goal: (target test accuracy, wall seconds on 2 CPU cores, median over 5 seeds)
GOALS = {"0.915": (0.915, 15), "0.93": (0.93, 60), "0.94": (0.94, 300)}


def variant(arg) -> str:
    """The recipe name for ``arg`` ('0.93', '93', '0.930', 0.93); ValueError listing them otherwise."""
    text = str(arg).strip()
    if text in RECIPES or text in ALIASES:
        return ALIASES.get(text, text)
    try:
        value = float(text)
    except ValueError:
        value = None
    for name, (target, _) in GOALS.items():
        if value is not None and (abs(value - target) < 1e-9 or abs(value / 100 - target) < 1e-9):
            return name
    raise ValueError(f"no speedrun recipe for target {text!r}; recipes: {', '.join(RECIPES)}")


def get_config(arg: str = "0.93"):
    return config.config_dict(**RECIPES[variant(arg)])
