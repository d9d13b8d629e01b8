r"""Fashion-MNIST accuracy of the reference recipes (experiments/configs/recipes.py), each trained
through experiments.train.

  python -m benchmarks.accuracy [--out=workdirs/accuracy] [--recipes=padded_cnn,vgg_bn]

Each recipe is an ordinary, resumable training workdir under --out; rerunning skips finished
ones. Prints one row per recipe: params, epochs, final/best test accuracy against the recipe's
target, wall time, img/s.
"""
from __future__ import annotations

import os
import subprocess
import sys

from absl import flags

from cnnjax.train.workdir import Workdir
from experiments import common
from experiments.configs import recipes

_OUT = flags.DEFINE_string("out", "workdirs/accuracy", "Directory of the recipes' workdirs.")
_RECIPES = flags.DEFINE_list("recipes", list(recipes.RECIPES), f"Recipes to run: {', '.join(recipes.RECIPES)}.")


def main(argv):
    unknown = set(_RECIPES.value) - set(recipes.RECIPES)
    if unknown:
        raise common.UsageError(f"unknown recipe(s) {sorted(unknown)}; known: {', '.join(recipes.RECIPES)}")
    rows = []
    for name in _RECIPES.value:
        workdir = os.path.join(_OUT.value, name)
        cmd = [sys.executable, "-m", "experiments.train", f"--config={recipes.__file__}:{name}",
               "--config.progress=plain", f"--workdir={workdir}"]
        print("$", " ".join(cmd[1:]), flush=True)
        if subprocess.run(cmd).returncode != 0:
            raise common.UsageError(f"recipe {name} failed; see its output above")
        rows.append((name, Workdir(workdir).summary()))
    print("\n| recipe | params | epochs | final test acc | test acc at the val-selected epoch | target | wall time | "
          "train img/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in rows:
        target = recipes.TARGETS[name]
        met = "met" if s["final_test_accuracy"] >= target else "MISSED"
        print(f"| {name} | {s['params']:,} | {s['epochs']} | {s['final_test_accuracy']:.4f} | "
              f"{s['selected_test_accuracy']:.4f} (epoch {s['selected_epoch']}) | {target:.3f} {met} | "
              f"{s['wall_seconds'] / 60:.1f} min | "
              f"{s['train_images_per_sec']:,.0f} |")


if __name__ == "__main__":
    common.run(main)
