"""Data-parallel training over 4 fake CPU devices equals 1 device with the same global batch."""
import functools
import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import json, sys, jax
from cnnjax import data, models
from cnnjax.train import optim, sharding, loop, state as train_state
from cnnjax.train.step import StepSpec
from cnnjax.train.config import TrainConfig
n_dev, fused = int(sys.argv[1]), sys.argv[2] == "scan"
ds = data.synthetic(256, 64, seed=0)
cfg = TrainConfig(model="padded_cnn", batch_size=32, epochs=2, learning_rate=1e-3, seed=0)
model = models.create(cfg.model)
tx = optim.make_optimizer(cfg, 256 // 32)
mesh = sharding.data_parallel_mesh(jax.devices()[:n_dev])
state = sharding.replicate(train_state.init_state(model, tx, 0, ds.image_shape), mesh)
images, labels = sharding.replicate((ds.train_images, ds.train_labels), mesh)
spec = StepSpec.from_config(cfg, model, tx, num_classes=10, mean=ds.mean, std=ds.std, mesh=mesh)
run = loop.make_epoch_runner(spec, fused=fused)
losses = []  # per step, or per epoch (the epoch mean) when fused
for epoch in (1, 2):
    state, m = run(state, images, labels, epoch,
                   on_step=None if fused else lambda i, n, mm: losses.append(float(mm["loss"])))
    if fused:
        losses.append(m["train_loss"])
spec = str(jax.tree.leaves(state.params)[0].sharding)
print(json.dumps({"devices": jax.device_count(), "losses": losses, "spec": spec,
                  "param_sum": float(sum(abs(p).sum() for p in jax.tree.leaves(state.params)))}))
"""


@functools.lru_cache(maxsize=None)
def run(n_dev, loop="steps"):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(n_dev), loop], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_four_devices_match_one_device():
    one, four = run(1), run(4)
    assert one["devices"] == four["devices"] == 4
    assert "NamedSharding" in four["spec"]
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(four["param_sum"], one["param_sum"], rtol=1e-4)
    assert len(one["losses"]) == 16 and one["losses"][-1] < one["losses"][0]


def test_fused_epoch_on_four_devices_matches_per_step_on_one():
    one, four = run(1), run(4, "scan")
    assert "NamedSharding" in four["spec"]
    epoch_means = [np.mean(one["losses"][:8]), np.mean(one["losses"][8:])]
    np.testing.assert_allclose(four["losses"], epoch_means, rtol=2e-4)
    np.testing.assert_allclose(four["param_sum"], one["param_sum"], rtol=1e-4)
