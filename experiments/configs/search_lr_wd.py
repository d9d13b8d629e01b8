r"""Search study: learning rate x weight decay for padded_cnn on Fashion-MNIST, with ASHA.

  python -m launch.search --config=experiments/configs/search_lr_wd.py --out=results/search_lr_wd \
      --num_cpus=2 --cpus_per_run=1

Optuna (TPE, seed 0) samples 12 trials from learning_rate in [1e-4, 1e-2] and weight_decay in
[1e-6, 1e-3] (both log-uniform; Adam, weight decay as L2 in the gradient); Ray Tune's ASHA
scheduler compares trials on validation accuracy (10% of the 10,000 held out) after 1, 2 epochs (grace period 1, reduction factor 2)
and stops the weak ones; the others run the full 4 epochs.  padded_cnn, the first 10,000
Fashion-MNIST training images (full test set), batch 128, cosine schedule.  Two trials at a time
on a 2-core machine.  Writes OUT/results.{md,csv,png} (one row per trial; the stopped ones listed
under the table) and says in results.md how many epochs ASHA trained against 12 x 4.
"""
from cnnjax.train import config


def get_config():
    return config.config_dict(model="padded_cnn", dataset="fashion_mnist", num_train=10000, epochs=4,
                              batch_size=128, optimizer="adam")


def get_search():
    return {"space": {"learning_rate": ("log", 1e-4, 1e-2), "weight_decay": ("log", 1e-6, 1e-3)},
            "num_samples": 12, "algorithm": "optuna", "metric": "val_accuracy", "mode": "max",
            "grace_period": 1, "reduction_factor": 2, "seed": 0}
