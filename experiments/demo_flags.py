"""Flags shared by the "seeing convolution" demos, defined once.

Tests import several demos (and experiments.train, which also defines dataset/data_dir/seed)
into one process, so these are defined with ``allow_override``; they mean the same everywhere.
"""
import os

from absl import flags

IMAGE = flags.DEFINE_string("image", None, "Image file (PNG/JPEG/...) to use instead of the test scene.",
                            allow_override=True)
DATASET = flags.DEFINE_string("dataset", None, "Dataset to take test images from (e.g. fashion_mnist, read "
                              "offline from IDX files; 'synthetic' needs no files).", allow_override=True)
INDEX = flags.DEFINE_integer("index", 0, "Test-image index for --dataset.", allow_override=True)
DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory with dataset files (see cnnjax.data.load).",
                               allow_override=True)
PADDING = flags.DEFINE_string("padding", "valid", "Padding: valid | same (edge_detection); for "
                              "conv_arithmetic also an int or lo:hi.", allow_override=True)
SEED = flags.DEFINE_integer("seed", 0, "Random seed (initial weights).", allow_override=True)
OUT_DIR = flags.DEFINE_string("out_dir", None, "Output directory (default out/<demo name>).", allow_override=True)


def out_dir(name: str) -> str:
    """--out_dir, or out/<name>; created if missing."""
    path = OUT_DIR.value or os.path.join("out", name)
    os.makedirs(path, exist_ok=True)
    return path
