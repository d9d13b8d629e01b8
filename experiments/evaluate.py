r"""Evaluate a training workdir's best (or latest) checkpoint on its test set.

  python -m experiments.evaluate --workdir=workdirs/padded_cnn [--which=best]

Prints test loss/accuracy and a per-class accuracy table; writes confusion.png (confusion.csv
beyond plots.MAX_FIGURE_CLASSES classes) and evaluation.json (which checkpoint -- ``which``,
``epoch``, its directory -- and the numbers) into --out (default: the workdir).  ``--shifts=N``
also scores the test images shifted by 1..N pixels up, down, left and right (zero fill,
cnnjax/interpret/shift.py): a table of accuracy per shift, and ``"shifts"`` rows in evaluation.json.  If
they cannot be written (e.g. a read-only workdir: give --out), the printed results are followed
by one ``error: cannot write PATH: ...`` line, exit 2.

The run is only read: nothing training wrote is moved, changed or removed (checkpoints are opened
read-only; a damaged checkpoint skipped by --which=latest is one line on stderr and stays where
it is); a checkpoint of another model is one ``error:`` line, exit 2.
"""
from __future__ import annotations

import dataclasses
import json
import os

from absl import flags

from experiments import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to evaluate.")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint to restore.")
_SHIFTS = flags.DEFINE_integer("shifts", 0, "Also evaluate on test images shifted by 1..N pixels in each direction.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory with the dataset (default: the run's data_dir).")
_OUT = flags.DEFINE_string("out", None, "Directory for confusion.png and evaluation.json (default: the workdir).")
#: the files this command writes (confusion.csv instead of the figure beyond plots.MAX_FIGURE_CLASSES
#: classes); training writes none of these names
OUTPUTS = ("confusion.png", "evaluation.json")


def per_class_table(class_names, per_class, confusion) -> str:
    width = max(len(n) for n in class_names)
    lines = [f"{'class'.ljust(width)}  accuracy  correct/total"]
    for name, acc, row, k in zip(class_names, per_class, confusion, range(len(class_names))):
        lines.append(f"{name.ljust(width)}  {acc:8.4f}  {row[k]:>7}/{row.sum()}")
    return "\n".join(lines)


def shift_table(rows) -> str:
    """Accuracy per shift distance (rows) and direction (columns)."""
    directions = list(dict.fromkeys(r["direction"] for r in rows if r["pixels"]))
    acc = {(r["pixels"], r["direction"]): r["accuracy"] for r in rows}
    lines = ["shift px  " + "  ".join(f"{d:>6}" for d in directions) + "    mean"]
    for k in sorted({r["pixels"] for r in rows}):
        cells = [acc.get((k, d), acc.get((k, "none"))) for d in directions]
        lines.append(f"{k:>8}  " + "  ".join(f"{c:6.4f}" for c in cells) + f"  {sum(cells) / len(cells):6.4f}")
    return "\n".join(lines)


def main(argv):
    from cnnjax import plots
    from cnnjax.train import evaluation, experiment, runs
    from cnnjax.interpret import shift
    from cnnjax.train.workdir import Workdir
    if not _WORKDIR.value:
        raise common.UsageError("--workdir is required")
    if _SHIFTS.value < 0:
        raise common.UsageError(f"--shifts must be >= 0, got {_SHIFTS.value}")
    out = _OUT.value or _WORKDIR.value
    if not os.path.isdir(out):
        raise common.UsageError(f"--out {out} is not a directory")
    model, variables, cfg, epoch = runs.load_trained(_WORKDIR.value, _WHICH.value)
    # the run's own data: its classes, image size, and the training split's statistics after the hold-out
    # (its recorded split; one error line when the data changed since it trained: cnnjax.data.fingerprint)
    ds = experiment.load_run_data(dataclasses.replace(cfg, data_dir=_DATA_DIR.value or cfg.data_dir), _WORKDIR.value,
                                  "cannot evaluate")
    ev = evaluation.evaluate(model, variables, ds, compute_dtype=cfg.compute_dtype, tta=cfg.tta)
    names = list(ds.class_names)
    print(f"{cfg.model} on {cfg.dataset} ({_WHICH.value} checkpoint, epoch {epoch}): "
          f"test loss {ev['loss']:.4f}, test accuracy {ev['accuracy']:.4f} ({len(ds.test_labels)} images)")
    print(per_class_table(names, ev["per_class_accuracy"], ev["confusion"]))
    shifts = None
    if _SHIFTS.value:
        shifts = shift.shift_evaluation(model, variables, ds, _SHIFTS.value, compute_dtype=cfg.compute_dtype,
                                        tta=cfg.tta)
        print(f"test accuracy on images shifted by 0..{_SHIFTS.value} px (zero fill):")
        print(shift_table(shifts))
    confusion_png = path = os.path.join(out, OUTPUTS[0])
    checkpoint = os.path.join(Workdir(_WORKDIR.value).checkpoint_dir, str(epoch))
    try:
        confusion_png = plots.plot_confusion(ev["confusion"], names, path,
                                             title=f"{cfg.model} on {cfg.dataset} (epoch {epoch})")
        path = os.path.join(out, OUTPUTS[1])
        with open(path, "w") as f:
            json.dump({"which": _WHICH.value, "epoch": epoch, "checkpoint": checkpoint, "loss": ev["loss"],
                       "accuracy": ev["accuracy"],
                       "per_class_accuracy": dict(zip(names, map(float, ev["per_class_accuracy"]))),
                       "confusion": ev["confusion"].tolist(), **({"shifts": shifts} if shifts else {})},
                      f, indent=2)
    except OSError as e:  # e.g. a read-only workdir: the results above stand, the files do not
        raise common.UsageError(f"cannot write {path}: {e.strerror or e}") from e
    print(f"wrote {confusion_png}")


if __name__ == "__main__":
    common.run(main)
