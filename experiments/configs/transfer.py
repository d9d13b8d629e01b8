r"""Study, course claim (seed 003), stage 2 of 2: learn Fashion-MNIST classes 5-9 (sandal, shirt,
sneaker, bag, ankle boot) from 10, 50, 100 or 1,000 training images per class, three ways:

  scratch    random initialisation, every layer trained;
  probe      start from the stage-1 network of the same model and seed, train only a new head
             (``freeze=('*', '!fc')``, ``reinit=('fc',)``: a linear probe; frozen batch norm runs
             on its running statistics);
  finetune   start from it, new head, every layer trained.

  python -m launch.sweep --config=experiments/configs/transfer_pretrain.py --out=results/transfer/pretrain
  python -m launch.sweep --config=experiments/configs/transfer.py --out=results/transfer/transfer

Stage 1 must have finished first: its runs are this stage's ``init_from`` (PRETRAIN_OUT, relative
to the repository root, where launch.sweep runs).  The validation split (10% of the classes'
training images, drawn before the N per class), evaluated 10 times per run, selects the checkpoint; the test set (the 5,000
test images of classes 5-9) is measured once.  2 models x 4 sizes x 3 ways x 5 seeds = 120 runs;
the same seed draws the same N images for all three ways (paired differences).
"""
import os

from cnnjax.train import config
from launch import study

PRETRAIN_OUT = os.path.join("results", "transfer", "pretrain")
SEEDS = config.sweep("seed", [0, 1, 2, 3, 4])
MODELS = ["padded_cnn", "vgg_bn"]
TARGET_CLASSES = (5, 6, 7, 8, 9)
# per class -> (epochs, batch size, validate and checkpoint every k epochs): at least 200 optimizer
# steps, and 10 validations to select from, whatever the size
SIZES = {10: (100, 25, 10), 50: (40, 50, 4), 100: (30, 50, 3), 1000: (10, 50, 1)}
REPORT = "launch.transfer"  # the tables: each way paired with scratch by seed, per model and size


def pretrained(model: str, seed: int) -> str:
    """The stage-1 work directory of ``model`` and ``seed`` (launch.sweep's run naming)."""
    return os.path.join(PRETRAIN_OUT, "runs", study.run_name({"model": model, "seed": seed}))


def ways(model: str, seed: int) -> list[dict]:
    source = pretrained(model, seed)
    return [{"init_from": None},
            {"init_from": source, "reinit": ("fc",), "freeze": ("*", "!fc")},
            {"init_from": source, "reinit": ("fc",)}]


def get_config():
    return config.config_dict(dataset="fashion_mnist", classes=TARGET_CLASSES, learning_rate=1e-3, optimizer="adam",
                              validation_size=0.1)


def get_sweep():
    sizes = [{"train_per_class": n, "epochs": e, "batch_size": b, "eval_every": k, "checkpoint_every": k}
             for n, (e, b, k) in SIZES.items()]
    return [{"seed": seed, "model": model, **size, **way}
            for seed in [s["seed"] for s in SEEDS] for model in MODELS for size in sizes for way in ways(model, seed)]
