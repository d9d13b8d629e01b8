"""The training state: one pytree (:class:`TrainState`) that a step maps to the next and a
checkpoint holds, and how a fresh one is made."""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from cnnjax.train import rng as rng_lib


class TrainState(NamedTuple):
    """The whole training state, a pytree (what a checkpoint holds)."""
    step: jax.Array         # int32 scalar, optimizer steps taken
    params: Any
    batch_stats: Any        # {} for models without batch norm
    opt_state: Any
    rng: jax.Array          # the run's raw PRNG key (uint32[2]); its streams: cnnjax.train.rng
    ema: Any = None         # config.ema_decay > 0: the moving average of variables() (same tree); else None

    def variables(self) -> dict:
        return {"params": self.params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}

    def eval_variables(self) -> dict:
        """What every evaluation uses: the weights' moving average when one is kept, else the weights."""
        return self.variables() if self.ema is None else self.ema


#: compiler options of functions that run once per process (init): optimising the generated code
#: harder costs more compile time than it could save at run time
_ONCE = {"xla_backend_optimization_level": 1}


def init_state(model: nn.Module, tx: optax.GradientTransformation, seed: int, image_shape,
               ema: bool = False) -> TrainState:
    """Fresh state for images of ``image_shape`` (H, W, C).  Parameters are drawn from
    ``cnnjax.train.rng.params_key(run_key(seed))``; with ``ema`` the moving average starts as a copy of
    the initial variables.  ``model.init`` runs jitted (one compilation instead of one per operation) at XLA's
    backend optimisation level 1: the same bits as the plain call for every registered model,
    compiled faster, for a function that runs once.  Call it outside ``jit`` (a jit with compiler
    options must be top-level); for shapes under a trace use :func:`abstract_state`."""
    init = jax.jit(functools.partial(model.init, train=False), compiler_options=_ONCE)
    return _state(init, tx, seed, image_shape, ema)


def _state(init: Callable, tx, seed: int, image_shape, ema: bool) -> TrainState:
    rng = rng_lib.run_key(seed)
    variables = init(rng_lib.params_key(rng), jnp.zeros((1, *image_shape), jnp.float32))
    params = variables["params"]
    state = TrainState(jnp.zeros((), jnp.int32), params, variables.get("batch_stats", {}), tx.init(params), rng)
    return restart_ema(state) if ema else state


def restart_ema(state: TrainState) -> TrainState:
    """``state`` with its moving average set to a copy of its current variables (a copy: the
    training step donates the state, and two fields must not share one buffer)."""
    return state._replace(ema=jax.tree.map(jnp.copy, state.variables()))


def abstract_state(model, tx, seed, image_shape, ema: bool = False) -> TrainState:
    """Shapes and dtypes of ``init_state`` without allocating (for checkpoint restore)."""
    return jax.eval_shape(lambda: _state(functools.partial(model.init, train=False), tx, seed, image_shape, ema))
