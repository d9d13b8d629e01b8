r"""Classify image files with a finished training run: top-k class names and probabilities.

  python -m experiments.predict --workdir=W photo.png shoes/ [--top_k=3] [--format=table|json|csv]

Each argument is an image file or a directory (its image files, recursively, sorted).  Every
file is read as the run's images were (cnnjax.data.imagefile: EXIF orientation, shorter side resized
to the run's size and centre-cropped), normalised with the run's mean and std, and classified in
batches of --batch_size by the run's evaluation forward pass (its compute dtype and test-time
augmentation).  stdout holds only predictions, in argument order:

  table  one line per file: the path, then "class probability" for the top k
  json   one JSON list: {"file", "predictions": [{"class", "index", "probability"}, ...]}
  csv    header file,class_1,probability_1,...; one row per file

A file that cannot be classified -- unreadable, not an image, or of another channel count than
the run's (a colour photo for a greyscale run; --convert_channels converts it by the
cnnjax.data.imagefile rule instead) -- is one ``error: PATH: ...`` line on stderr; the other files are
still predicted.  Exit status: 0 all files predicted; 1 some files could not be (each named
on stderr), the others were predicted; 2 bad input before any prediction (a workdir with no
finished training, a checkpoint of another model, a bad flag, no readable file at all).
Nothing is written to disk: the run is only read (a damaged checkpoint skipped by
--which=latest is one line on stderr, left in place), and only predictions reach stdout.
"""
from __future__ import annotations

import csv
import json
import sys

import numpy as np
from absl import flags

from experiments import common

_WORKDIR = flags.DEFINE_string("workdir", None, "Finished training workdir whose model classifies.")
_WHICH = flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint to restore.")
_TOP_K = flags.DEFINE_integer("top_k", None, "Classes to list per file, most probable first (default: 3, or "
                               "the run's number of classes when it has fewer).")
_FORMAT = flags.DEFINE_enum("format", "table", ["table", "json", "csv"], "Output format on stdout.")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Images per forward pass (and per read of files).")
_CONVERT = flags.DEFINE_bool("convert_channels", False, "Convert colour files for a greyscale run (luma) "
                             "and greyscale files for a colour run, instead of refusing them.")


def top_k(probabilities: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices (N, k), probabilities (N, k)), most probable first (ties: lower index first)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(probabilities, order, axis=1)


class _Printer:
    def __init__(self, fmt: str, k: int, out=sys.stdout):
        self.fmt, self.k, self.out, self.first = fmt, k, out, True
        if fmt == "csv":
            self.csv = csv.writer(out, lineterminator="\n")
            self.csv.writerow(["file"] + [f"{c}_{i}" for i in range(1, k + 1) for c in ("class", "probability")])
        elif fmt == "json":
            out.write("[")

    def rows(self, paths, names, indices, probs):
        for path, idx, p in zip(paths, indices, probs):
            if self.fmt == "table":
                self.out.write(path + "  " + "  ".join(f"{names[i]} {q:.4f}" for i, q in zip(idx, p)) + "\n")
            elif self.fmt == "csv":
                self.csv.writerow([path] + [v for i, q in zip(idx, p) for v in (names[i], f"{q:.6g}")])
            else:
                item = {"file": path, "predictions": [{"class": names[i], "index": int(i), "probability": float(q)}
                                                       for i, q in zip(idx, p)]}
                self.out.write(("\n " if self.first else ",\n ") + json.dumps(item))
                self.first = False
        self.out.flush()

    def close(self):
        if self.fmt == "json":
            self.out.write("\n]\n" if not self.first else "]\n")
        self.out.flush()


def _error(line: str) -> None:
    print(f"error: {' '.join(line.split())}", file=sys.stderr, flush=True)


def main(argv):
    from cnnjax.train import experiment
    from cnnjax.interpret import inference
    if not _WORKDIR.value:
        raise common.UsageError("--workdir is required")
    if len(argv) < 2:
        raise common.UsageError("no image files or directories given (python -m experiments.predict "
                                "--workdir=W FILES_OR_DIRS...)")
    if _BATCH.value < 1:
        raise common.UsageError(f"--batch_size must be >= 1, got {_BATCH.value}")
    run = inference.load_run(_WORKDIR.value, _WHICH.value)
    experiment.check_run_data(_WORKDIR.value, "cannot predict")  # one line if its data changed
    classes = len(run.class_names)
    k = min(3, classes) if _TOP_K.value is None else _TOP_K.value
    if not 1 <= k <= classes:
        raise common.UsageError(f"--top_k must be in [1, {classes}] (the run has {classes} classes), got {k}")
    files, errors = inference.image_files(argv[1:])
    for line in errors:
        _error(line)
    predict = inference.make_predict_fn(run)
    batch, printer, done = _BATCH.value, None, 0
    for start in range(0, len(files), batch):
        images, paths, bad = inference.read_images(files[start:start + batch], run.image_shape, _CONVERT.value)
        errors += bad
        for line in bad:
            _error(line)
        if not paths:
            continue
        padded = np.concatenate([images, np.zeros((batch - len(paths), *images.shape[1:]), np.uint8)])
        probs = np.asarray(predict(padded))[:len(paths)]  # one compiled batch shape for every batch
        printer = printer or _Printer(_FORMAT.value, k)
        printer.rows(paths, run.class_names, *top_k(probs, k))
        done += len(paths)
    if printer is not None:
        printer.close()
    if not done:
        raise common.UsageError("no image could be classified" + (f" ({len(errors)} error(s) above)" if errors else ""))
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    common.run(main, positional=True)
