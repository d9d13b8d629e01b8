r"""Study: does the default recipe hold from 1k to 60k training images?  Regularisation settings
of padded_cnn (15 epochs, batch 50, Adam 1e-3 cosine) on the first 1k, 4k, 10k and all 60k
Fashion-MNIST training images, each with a 10% validation split; chosen by validation accuracy.

  python -m launch.sweep --config=experiments/configs/small_data_defaults.py \
      --out=results/small_data_defaults --cpus_per_run=1

Settings (each a change from the config's defaults):
  none          no regularisation (the defaults before this study)
  crop          random 2-pixel-shift crops on the device
  wd            L2 weight decay 1e-4 (Adam)
  ls            label smoothing 0.1
  crop+ls       both
  crop+ls+wd    all three

The table's rows are (num_train, setting); results.md's paired comparison against the
``none`` row of the same size says what each setting buys, with its 95% interval.
"""
from cnnjax.train import config

SETTINGS = {
    "none": {"augment": "none", "weight_decay": 0.0, "label_smoothing": 0.0},
    "crop": {"augment": "crop", "weight_decay": 0.0, "label_smoothing": 0.0},
    "wd": {"augment": "none", "weight_decay": 1e-4, "label_smoothing": 0.0},
    "ls": {"augment": "none", "weight_decay": 0.0, "label_smoothing": 0.1},
    "crop+ls": {"augment": "crop", "weight_decay": 0.0, "label_smoothing": 0.1},
    "crop+ls+wd": {"augment": "crop", "weight_decay": 1e-4, "label_smoothing": 0.1},
}


def get_config():
    return config.config_dict(model="padded_cnn", dataset="fashion_mnist", epochs=15, validation_size=0.1)


BASELINE = SETTINGS["none"]  # results.md compares every row with it, paired by seed


def get_sweep():
    return config.product(config.sweep("seed", [0, 1]),
                          config.sweep("num_train", [1000, 4000, 10000, 0]),
                          list(SETTINGS.values()))
