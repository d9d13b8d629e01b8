"""The transfer study's two config files expand to the runs the claim needs, and they validate."""
import collections
import os

from experiments import common
from launch import study

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAIN = os.path.join(REPO, "experiments", "configs", "transfer_pretrain.py")
TRANSFER = os.path.join(REPO, "experiments", "configs", "transfer.py")


def _load(path):
    return study.load(path, common.config_module(path).get_config(), [], [])


def test_pretraining_is_classes_0_to_4_per_model_and_seed():
    runs = _load(PRETRAIN).runs
    assert sorted((r.config.model, r.config.seed) for r in runs) == \
        [(m, s) for m in ("padded_cnn", "vgg_bn") for s in range(5)]
    assert {r.config.classes for r in runs} == {(0, 1, 2, 3, 4)} and {r.config.train_per_class for r in runs} == {0}


def test_transfer_runs_scratch_probe_and_finetune_from_the_same_seed_s_pretrained_run():
    pretrained = {(r.config.model, r.config.seed): os.path.join("results", "transfer", "pretrain", "runs", r.name)
                  for r in _load(PRETRAIN).runs}
    runs = _load(TRANSFER).runs
    assert len(runs) == 2 * 4 * 3 * 5
    groups = collections.defaultdict(list)
    for r in runs:
        c = r.config
        assert c.classes == (5, 6, 7, 8, 9) and c.validation_size == 0.1
        groups[(c.model, c.seed, c.train_per_class)].append(c)
    assert sorted({k[2] for k in groups}) == [10, 50, 100, 1000]
    for (model, seed, _), cfgs in groups.items():
        scratch, probe, finetune = cfgs
        assert scratch.init_from is None and not scratch.freeze
        assert probe.init_from == finetune.init_from == pretrained[(model, seed)]
        assert probe.freeze == ("*", "!fc") and probe.reinit == finetune.reinit == ("fc",) and not finetune.freeze
        assert len({(c.epochs, c.batch_size) for c in cfgs}) == 1  # the three ways train alike
