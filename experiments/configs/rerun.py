"""The config of an earlier run: ``--config=experiments/configs/rerun.py:PATH``, where PATH is a
work directory or its config.json.  Overrides apply as usual:

  python -m experiments.train --config=experiments/configs/rerun.py:workdirs/a \
      --config.seed=1 --workdir=workdirs/a_seed1
"""
import os

from cnnjax.train import config, workdir


def get_config(path: str):
    file = os.path.join(path, workdir.CONFIG) if os.path.isdir(path) else path
    cfg = workdir.read_config(file)
    if cfg is None:
        raise ValueError(f"{file} not found: give a work directory or its config.json")
    return config.config_dict(cfg)
