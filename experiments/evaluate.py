r"""Evaluate a training workdir's best (or latest) checkpoint on its test set.

  python -m experiments.evaluate --workdir=workdirs/padded_cnn [--which=best]

Prints test loss/accuracy and a per-class accuracy table; writes confusion.png (and
evaluation.json) into the workdir.  If they cannot be written (e.g. a read-only workdir),
the printed results are followed by one ``error: cannot write PATH: ...`` line, exit status 2.
"""
from __future__ import annotations

import json
import os

from absl import flags

from experiments import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to evaluate.")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint to restore.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory with the dataset (default: the run's data_dir).")


def per_class_table(class_names, per_class, confusion) -> str:
    width = max(len(n) for n in class_names)
    lines = [f"{'class'.ljust(width)}  accuracy  correct/total"]
    for name, acc, row, k in zip(class_names, per_class, confusion, range(len(class_names))):
        lines.append(f"{name.ljust(width)}  {acc:8.4f}  {row[k]:>7}/{row.sum()}")
    return "\n".join(lines)


def main(argv):
    from cnnjax import data, evaluation, experiment, plots
    if not _WORKDIR.value:
        raise common.UsageError("--workdir is required")
    model, variables, cfg, epoch = experiment.load_trained(_WORKDIR.value, _WHICH.value)
    ds = data.load(cfg.dataset, _DATA_DIR.value or cfg.data_dir, image_size=cfg.image_size, channels=cfg.channels,
                   cache_dir=cfg.data_cache_dir).subset(cfg.num_train or None, cfg.num_test or None)
    ev = evaluation.evaluate(model, variables, ds, compute_dtype=cfg.compute_dtype, tta=cfg.tta)
    names = list(ds.class_names)
    print(f"{cfg.model} on {cfg.dataset} ({_WHICH.value} checkpoint, epoch {epoch}): "
          f"test loss {ev['loss']:.4f}, test accuracy {ev['accuracy']:.4f} ({len(ds.test_labels)} images)")
    print(per_class_table(names, ev["per_class_accuracy"], ev["confusion"]))
    confusion_png = path = os.path.join(_WORKDIR.value, "confusion.png")
    try:
        plots.plot_confusion(ev["confusion"], names, path, title=f"{cfg.model} on {cfg.dataset}")
        path = os.path.join(_WORKDIR.value, "evaluation.json")
        with open(path, "w") as f:
            json.dump({"which": _WHICH.value, "epoch": epoch, "loss": ev["loss"],
                       "accuracy": ev["accuracy"],
                       "per_class_accuracy": dict(zip(names, map(float, ev["per_class_accuracy"]))),
                       "confusion": ev["confusion"].tolist()}, f, indent=2)
    except OSError as e:  # e.g. a read-only workdir: the results above stand, the files do not
        raise common.UsageError(f"cannot write {path}: {e.strerror or e}") from e
    print(f"wrote {confusion_png}")


if __name__ == "__main__":
    common.run(main)
