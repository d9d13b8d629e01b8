"""The random streams of a training run, in one table.

Every random draw of a run comes from its one raw key, ``jax.random.PRNGKey(cfg.seed)`` (kept in
:class:`cnnjax.train.state.TrainState` as ``rng``), split into streams by ``jax.random.fold_in``
with the constants below:

============  ============================================  =======================================
stream        key                                           used by
============  ============================================  =======================================
parameters    ``fold_in(rng, PARAMS)``                      :func:`cnnjax.train.state.init_state`
data order    ``fold_in(fold_in(rng, DATA_ORDER), epoch)``  :func:`cnnjax.train.loop.epoch_permutation`
                                                            (the in-memory and the streaming paths)
step/dropout  ``fold_in(fold_in(rng, STEP), state.step)``   :func:`cnnjax.train.step.train_step`: the
                                                            model's ``dropout`` rng
augmentation  ``fold_in(step key, AUGMENT)``                :func:`cnnjax.train.step.prepare_batch`
                                                            (flips/crops draw from it directly; the
                                                            other families from ``fold_in(it, k)``,
                                                            ``k`` in ``cnnjax.augment.FAMILY``)
============  ============================================  =======================================

.. warning:: **Bit-identical resume depends on these numbers.**  A run resumed from a checkpoint
   re-derives the data order of the coming epochs and the keys of the coming steps from the
   checkpoint's ``rng``, ``epoch`` and ``step``; it continues exactly where the interrupted run
   would have gone only while every constant here (and the order of the folds) is unchanged.
   Changing one silently changes every seeded result (and a resumed run's remaining epochs
   differ from those of an uninterrupted one with the old code).  ``AUGMENT`` and
   ``DATA_ORDER`` are both 1 but fold different parents (the step key and ``rng``), so the
   streams are distinct.  The augmentation families' sub-streams (``cnnjax.augment.FAMILY``:
   affine 1, policy 2, erasing 3, mix 4, folded into the augmentation key) belong to this table
   too.  ``tests/test_rng.py`` pins the constants and derived keys; update it only
   deliberately, knowing old checkpoints then resume differently.
"""
from __future__ import annotations

import jax

#: parameter initialisation: ``fold_in(rng, PARAMS)``
PARAMS = 0
#: the per-epoch permutation of the training set: ``fold_in(fold_in(rng, DATA_ORDER), epoch)``
DATA_ORDER = 1
#: the per-step key (the dropout rng): ``fold_in(fold_in(rng, STEP), step)``
STEP = 2
#: augmentation of a step's batch: ``fold_in(step_key, AUGMENT)`` (folds the step key, not ``rng``)
AUGMENT = 1


def run_key(seed: int) -> jax.Array:
    """The raw key of a run with ``seed`` (uint32[2]), from which every stream is folded."""
    return jax.random.PRNGKey(seed)


def params_key(rng) -> jax.Array:
    """The key of parameter initialisation."""
    return jax.random.fold_in(rng, PARAMS)


def epoch_key(rng, epoch) -> jax.Array:
    """The key of ``epoch``'s data order."""
    return jax.random.fold_in(jax.random.fold_in(rng, DATA_ORDER), epoch)


def step_key(rng, step) -> jax.Array:
    """The key of optimizer step ``step`` (traced or not); the model's dropout rng."""
    return jax.random.fold_in(jax.random.fold_in(rng, STEP), step)


def augment_key(key_of_step) -> jax.Array:
    """The augmentation key of the step whose :func:`step_key` is ``key_of_step``."""
    return jax.random.fold_in(key_of_step, AUGMENT)
