r"""One test image under each of the 15 MNIST-C corruptions (cnnjax.interpret.corruptions), one PNG.

  python -m experiments.corruptions_figure                        # docs/images/corruptions.png
  python -m experiments.corruptions_figure --dataset=synthetic_color --index=3 --out=fig.png
  python -m experiments.corruptions_figure --severity=5          # every graded one at severity 5

The clean image first, then each corruption at ``--severity`` (default: MNIST-C's own severity
per corruption; the four without a scale have none), seed ``--seed``.  Greyscale images are drawn
in grey, colour ones in colour.  Bad input (unknown dataset, an index outside the test split, a
severity outside 1..5) is one ``error:`` line, exit 2, nothing written.
"""
from __future__ import annotations

from absl import flags

from experiments import common

_DATASET = flags.DEFINE_string("dataset", "fashion_mnist", "Dataset whose test image is corrupted.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory with the dataset files (default: the dataset's own).")
_INDEX = flags.DEFINE_integer("index", 0, "Index of the test image.")
_SEVERITY = flags.DEFINE_integer("severity", None, "Severity 1..5 of the graded corruptions (default MNIST-C's).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the corruptions' randomness.")
_OUT = flags.DEFINE_string("out", "docs/images/corruptions.png", "PNG to write.")


def main(argv):
    import numpy as np

    from cnnjax import data, plots
    from cnnjax.interpret import corruptions
    if _SEVERITY.value is not None and _SEVERITY.value not in (1, 2, 3, 4, 5):
        raise common.UsageError(f"--severity must be 1..5, got {_SEVERITY.value}")
    try:
        ds = data.load(_DATASET.value, data_dir=_DATA_DIR.value)
    except data.DataError as e:
        raise common.UsageError(f"--dataset {_DATASET.value}: {e}") from None
    if not 0 <= _INDEX.value < len(ds.test_labels):
        raise common.UsageError(f"--index must be in [0, {len(ds.test_labels)}), got {_INDEX.value}")
    image = ds.test_images[_INDEX.value:_INDEX.value + 1]
    panels, titles = [image[0]], [f"clean ({ds.class_names[ds.test_labels[_INDEX.value]]})"]
    for name in corruptions.names():
        sev = None if corruptions.severities(name) == (None,) else _SEVERITY.value
        shown = sev if sev is not None else corruptions.CORRUPTIONS[name].default
        panels.append(corruptions.corrupt(image, name, sev, _SEED.value)[0])
        titles.append(name + (f" ({shown})" if shown else ""))
    grey = image.shape[-1] == 1
    images = [p[..., 0] if grey else p.astype(np.float32) / 255 for p in panels]
    path = plots.image_grid(images, titles, _OUT.value, ncols=8, limits=(0, 255) if grey else None,
                            suptitle=f"MNIST-C corruptions (severity in brackets) on {_DATASET.value} test image "
                                     f"{_INDEX.value}", panel_size=1.9)
    print(f"wrote {path}")


if __name__ == "__main__":
    common.run(main)
