"""Data parallelism over every device: a 1-D mesh named 'data', whole copies of what every device
needs, and batches split along their first axis.  Without a mesh (one device) each is the identity."""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def data_parallel_mesh(devices=None) -> Mesh | None:
    """A 1-D ``Mesh`` named 'data' over ``devices`` (default: all devices of all processes);
    None when there is only one device (plain single-device jit)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), ("data",)) if len(devices) > 1 else None


def replicate(tree, mesh: Mesh | None):
    """Place arrays on every device of ``mesh`` (whole copies); identity without a mesh.
    Works across processes: each process supplies the same host data."""
    if mesh is None:
        return jax.device_put(tree)
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda a: jax.make_array_from_callback(np.shape(a), sharding, lambda idx: np.asarray(a)[idx]),
                        tree)


def split_batch(a: jax.Array, mesh: Mesh | None) -> jax.Array:
    """Inside a jitted function: ``a`` (leading axis = the batch) split along the mesh's 'data'
    axis, the other axes whole; ``a`` itself without a mesh."""
    if mesh is None:
        return a
    return jax.lax.with_sharding_constraint(a, NamedSharding(mesh, P("data", *(None,) * (a.ndim - 1))))
