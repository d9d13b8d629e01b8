"""Issue 39's 16-run slice of the transfer study (experiments/configs/transfer.py): padded_cnn,
seeds 0 and 1, all four sizes, scratch and finetune; stage 1 from $PRETRAIN_OUT (benchmarks/study_time/README.md)."""
import os
try:
    from cnnjax.train import config
except ImportError:  # the code before issue 36's regroup
    from cnnjax import config
from launch import study

PRETRAIN_OUT = os.environ.get("PRETRAIN_OUT", "/tmp/slice/pretrain")
SIZES = {10: (100, 25, 10), 50: (40, 50, 4), 100: (30, 50, 3), 1000: (10, 50, 1)}


def get_config():
    return config.config_dict(dataset="fashion_mnist", classes=(5, 6, 7, 8, 9), learning_rate=1e-3, optimizer="adam",
                              validation_size=0.1)


def get_sweep():
    runs = []
    for seed in (0, 1):
        source = os.path.join(PRETRAIN_OUT, "runs", study.run_name({"model": "padded_cnn", "seed": seed}))
        for n, (e, b, k) in SIZES.items():
            for way in ({"init_from": None}, {"init_from": source, "reinit": ("fc",)}):
                runs.append({"seed": seed, "model": "padded_cnn", "train_per_class": n, "epochs": e, "batch_size": b,
                             "eval_every": k, "checkpoint_every": k, **way})
    return runs
