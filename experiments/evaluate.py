r"""Evaluate a training workdir's best (or latest) checkpoint on its test set.

  python -m experiments.evaluate --workdir=workdirs/padded_cnn [--which=best]

Prints test loss/accuracy and a per-class accuracy table; writes confusion.png (confusion.csv
beyond plots.MAX_FIGURE_CLASSES classes) and evaluation.json (which checkpoint -- ``which``,
``epoch``, its directory -- and the numbers) into --out (default: the workdir).  ``--shifts=N``
also scores the test images shifted by 1..N pixels up, down, left and right (zero fill,
cnnjax/interpret/shift.py): a table of accuracy per shift, and ``"shifts"`` rows in evaluation.json.  If
they cannot be written (e.g. a read-only workdir: give --out), the printed results are followed
by one ``error: cannot write PATH: ...`` line, exit 2.

Robustness (cnnjax.interpret, docs/robustness.md), each also a key of evaluation.json:

* ``--shifts=N`` also gives, per shift, the consistency with the unshifted prediction, and Zhang's
  consistency: two random shifts in [-N, N]^2 per test image (``--shift_seed``), how often they
  get the same class.
* ``--corruptions=all|NAME,...``: accuracy under each MNIST-C corruption at each severity
  (``--severities``, default 1..5, ``default``: MNIST-C's own one per corruption; the four without a
  scale once; ``--corruption_seed``), the mean
  over corruptions, and the error relative to the clean error.
* ``--attack=fgsm|pgd --eps=E,...``: accuracy against the attack at each eps (pixel units of 255;
  PGD: ``--steps``, ``--step_size`` (default 2.5 eps / steps), ``--attack_seed``).
* ``--calibration``: NLL and ECE (``--bins`` equal-width bins) on the test set before and after
  temperature scaling fitted on the run's validation split, and ``reliability.png`` in --out.
* ``--test_images=N`` scores only the first N test images (every number above and the plain one).

Bad input (an unknown corruption, a negative eps, ``--calibration`` on a run trained without a
validation split, ...) is one ``error:`` line, exit 2, before anything is computed or written.

The run is only read: nothing training wrote is moved, changed or removed (checkpoints are opened
read-only; a damaged checkpoint skipped by --which=latest is one line on stderr and stays where
it is); a checkpoint of another model is one ``error:`` line, exit 2.  Only the files of
:data:`OUTPUTS` are written, into --out (default: the workdir).
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
_SHIFT_SEED = flags.DEFINE_integer("shift_seed", 0, "Seed of the random shift pairs of Zhang's consistency (--shifts).")
_CORRUPTIONS = flags.DEFINE_string("corruptions", None, "'all' or MNIST-C corruption names, comma-separated.")
_SEVERITIES = flags.DEFINE_list("severities", ["1", "2", "3", "4", "5"], "Severities of --corruptions (1..5; "
                                 "'default': each corruption's MNIST-C severity).")
_CORRUPTION_SEED = flags.DEFINE_integer("corruption_seed", 0, "Seed of the corruptions' randomness.")
_ATTACK = flags.DEFINE_string("attack", None, "Adversarial attack: fgsm or pgd (L-infinity).")
_EPS = flags.DEFINE_list("eps", None, "Attack budgets in pixel units of 255, comma-separated (e.g. 0,1,2,4,8).")
_STEPS = flags.DEFINE_integer("steps", 10, "PGD steps.")
_STEP_SIZE = flags.DEFINE_float("step_size", None, "PGD step size in pixel units (default 2.5 * eps / steps).")
_ATTACK_SEED = flags.DEFINE_integer("attack_seed", 0, "Seed of PGD's random start.")
_CALIBRATION = flags.DEFINE_bool("calibration", False, "Report NLL, ECE and temperature scaling (fitted on the "
                                 "validation split) and write reliability.png.")
_BINS = flags.DEFINE_integer("bins", 15, "Equal-width confidence bins of the ECE.")
_TEST_IMAGES = flags.DEFINE_integer("test_images", 0, "Score the first N test images only (0: all).")
#: the files this command writes (confusion.csv instead of the figure beyond plots.MAX_FIGURE_CLASSES
#: classes; reliability.png only with --calibration); training writes none of these names
OUTPUTS = ("confusion.png", "evaluation.json", "reliability.png")


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


def consistency_table(rows) -> str:
    """Consistency with the unshifted prediction per shift distance (rows) and direction (columns)."""
    return shift_table([{**r, "accuracy": r["consistency"]} for r in rows])


def corruption_table(result) -> str:
    """Accuracy per corruption (rows) and severity (columns), the corruption's mean, its error / clean error."""
    levels = sorted({r["severity"] for r in result["rows"] if r["severity"] is not None})
    width = max(len("corruption"), *(len(n) for n in result["per_corruption"]))
    lines = [f"{'corruption'.ljust(width)}  " + "  ".join(f"{'sev ' + str(k):>6}" for k in levels)
             + "    mean  err/clean"]
    for name, mean in result["per_corruption"].items():
        acc = {r["severity"]: r["accuracy"] for r in result["rows"] if r["corruption"] == name}
        cells = [f"{acc[k]:6.4f}" if k in acc else f"{'':6}" for k in levels] if None not in acc else \
            [f"{acc[None]:6.4f}"] + [f"{'':6}"] * (len(levels) - 1)
        clean_err = 1 - result["clean"]["accuracy"]
        rel = (1 - mean) / clean_err if clean_err > 0 else float("inf")
        lines.append(f"{name.ljust(width)}  " + "  ".join(cells) + f"  {mean:6.4f}  {rel:9.2f}")
    lines.append(f"{'mean'.ljust(width)}  " + "  ".join(f"{'':6}" for _ in levels)
                 + f"  {result['mean_accuracy']:6.4f}  {result['mean_relative_error']:9.2f}")
    return "\n".join(lines)


def _check_options():
    """The robustness options, parsed: (corruption names or None, severities, eps or None); UsageError
    (one line naming the option) for a bad one, before anything is loaded."""
    from cnnjax.interpret import attacks, corruptions
    names = None
    if _CORRUPTIONS.value is not None:
        try:
            names = corruptions.parse_names(_CORRUPTIONS.value)
        except ValueError as e:
            raise common.UsageError(f"--corruptions: {e}") from None
    bad = common.UsageError(f"--severities must be integers 1..5 or 'default' (MNIST-C's own), got "
                            f"{','.join(_SEVERITIES.value)}")
    try:
        levels = [None if v == "default" else int(v) for v in _SEVERITIES.value]
    except ValueError:
        raise bad from None
    if not levels or any(v not in (None, 1, 2, 3, 4, 5) for v in levels):
        raise bad
    eps = None
    if _ATTACK.value is not None or _EPS.value is not None:
        if _ATTACK.value is None:
            raise common.UsageError("--eps needs --attack=fgsm|pgd")
        try:
            eps = [float(v) for v in (_EPS.value or ["0", "1", "2", "4", "8"])]
        except ValueError:
            raise common.UsageError(f"--eps must be numbers (pixel units of 255), got {','.join(_EPS.value)}") from None
        try:
            attacks.check_settings(_ATTACK.value, eps, _STEPS.value, _STEP_SIZE.value)
        except ValueError as e:  # "eps must be >= 0 ..." -> "--eps must be >= 0 ..."
            first = str(e).split(" ", 1)[0]
            raise common.UsageError(f"--{e}" if first in ("eps", "steps", "step_size") else f"--attack: {e}") from None
    if _BINS.value < 1:
        raise common.UsageError(f"--bins must be >= 1, got {_BINS.value}")
    if _TEST_IMAGES.value < 0:
        raise common.UsageError(f"--test_images must be >= 0, got {_TEST_IMAGES.value}")
    return names, levels, eps


def main(argv):
    from cnnjax import plots
    from cnnjax.train import evaluation, experiment, runs
    from cnnjax.interpret import shift
    from cnnjax.interpret import attacks, calibration, corruptions
    from cnnjax.train.workdir import Workdir
    if not _WORKDIR.value:
        raise common.UsageError("--workdir is required")
    if _SHIFTS.value < 0:
        raise common.UsageError(f"--shifts must be >= 0, got {_SHIFTS.value}")
    names_c, levels, eps = _check_options()
    out = _OUT.value or _WORKDIR.value
    if not os.path.isdir(out):
        raise common.UsageError(f"--out {out} is not a directory")
    model, variables, cfg, epoch = runs.load_trained(_WORKDIR.value, _WHICH.value)
    # the run's own data: its classes, image size, and the training split's statistics after the hold-out
    # (its recorded split; one error line when the data changed since it trained: cnnjax.data.fingerprint)
    ds = experiment.load_run_data(dataclasses.replace(cfg, data_dir=_DATA_DIR.value or cfg.data_dir), _WORKDIR.value,
                                  "cannot evaluate")
    if _CALIBRATION.value and not ds.has_validation:
        raise common.UsageError(f"--calibration: {_WORKDIR.value} trained without a validation split "
                                f"(validation_size=0); temperature scaling is fitted on validation data, never on "
                                f"the test set")
    if _TEST_IMAGES.value:
        ds = ds.subset(None, _TEST_IMAGES.value)
    # the statistics the run normalised with (data.json), as training and evaluation did
    info = Workdir(_WORKDIR.value).data_info()
    norm = {"compute_dtype": cfg.compute_dtype, "tta": cfg.tta, "mean": info["mean"], "std": info["std"]}
    ev = evaluation.evaluate(model, variables, ds, compute_dtype=cfg.compute_dtype, tta=cfg.tta)
    names = list(ds.class_names)
    print(f"{cfg.model} on {cfg.dataset} ({_WHICH.value} checkpoint, epoch {epoch}): "
          f"test loss {ev['loss']:.4f}, test accuracy {ev['accuracy']:.4f} ({len(ds.test_labels)} images)")
    print(per_class_table(names, ev["per_class_accuracy"], ev["confusion"]))
    extra = {}
    if _SHIFTS.value:
        shifts = shift.shift_evaluation(model, variables, ds, _SHIFTS.value, compute_dtype=cfg.compute_dtype,
                                        tta=cfg.tta)
        print(f"test accuracy on images shifted by 0..{_SHIFTS.value} px (zero fill):")
        print(shift_table(shifts))
        print("consistency with the unshifted prediction:")
        print(consistency_table(shifts))
        zhang = shift.random_shift_consistency(model, variables, ds, _SHIFTS.value, _SHIFT_SEED.value, **norm)
        print(f"Zhang's consistency (two random shifts in [-{_SHIFTS.value}, {_SHIFTS.value}]^2 per image, seed "
              f"{_SHIFT_SEED.value}): {zhang['consistency']:.4f}")
        extra.update(shifts=shifts, shift_consistency=zhang)
    if names_c is not None:
        res = corruptions.corruption_evaluation(model, variables, ds, names_c, levels, _CORRUPTION_SEED.value, **norm)
        print(f"test accuracy under MNIST-C corruptions (seed {_CORRUPTION_SEED.value}; err/clean = error over the "
              f"clean error {1 - res['clean']['accuracy']:.4f}):")
        print(corruption_table(res))
        extra["corruptions"] = res
    if eps is not None:
        rows = attacks.attack_evaluation(model, variables, ds, _ATTACK.value, eps, steps=_STEPS.value,
                                         step_size=_STEP_SIZE.value, seed=_ATTACK_SEED.value, **norm)
        how = (f"{_STEPS.value} steps of " + (f"{_STEP_SIZE.value:g}" if _STEP_SIZE.value else "2.5 eps / steps")
               + f", random start, seed {_ATTACK_SEED.value}") if _ATTACK.value == "pgd" else "one step"
        print(f"test accuracy against {_ATTACK.value.upper()} (L-inf, eps in pixel units of 255; {how}):")
        print("     eps  accuracy\n" + "\n".join(f"{r['eps']:8g}  {r['accuracy']:8.4f}" for r in rows))
        extra["attack"] = rows
    if _CALIBRATION.value:
        cal = calibration.calibration_evaluation(model, variables, ds, bins=_BINS.value, **norm)
        b, a = cal["before"], cal["after"]
        print(f"calibration (test set; temperature fitted on the {cal['val_images']} validation images, "
              f"ECE over {_BINS.value} equal-width bins):")
        print(f"                 NLL     ECE\nT = 1         {b['nll']:.4f}  {b['ece']:.4f}\n"
              f"T = {cal['temperature']:<8.4f}  {a['nll']:.4f}  {a['ece']:.4f}")
        extra["calibration"] = cal
    confusion_png = path = os.path.join(out, OUTPUTS[0])
    checkpoint = os.path.join(Workdir(_WORKDIR.value).checkpoint_dir, str(epoch))
    try:
        confusion_png = plots.plot_confusion(ev["confusion"], names, path,
                                             title=f"{cfg.model} on {cfg.dataset} (epoch {epoch})")
        written = [confusion_png]
        if _CALIBRATION.value:
            path = os.path.join(out, OUTPUTS[2])
            written.append(calibration.plot_reliability(extra["calibration"], path,
                                                        f"{cfg.model} on {cfg.dataset} (epoch {epoch})"))
        path = os.path.join(out, OUTPUTS[1])
        with open(path, "w") as f:
            json.dump({"which": _WHICH.value, "epoch": epoch, "checkpoint": checkpoint, "loss": ev["loss"],
                       "accuracy": ev["accuracy"],
                       "per_class_accuracy": dict(zip(names, map(float, ev["per_class_accuracy"]))),
                       "confusion": ev["confusion"].tolist(),
                       **({"test_images": len(ds.test_labels)} if _TEST_IMAGES.value else {}), **extra},
                      f, indent=2, default=_json_number)
    except OSError as e:  # e.g. a read-only workdir: the results above stand, the files do not
        raise common.UsageError(f"cannot write {path}: {e.strerror or e}") from e
    print(f"wrote {', '.join(written)}")


def _json_number(v):
    """numpy scalars in evaluation.json as plain numbers."""
    import numpy as np
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


if __name__ == "__main__":
    common.run(main)
