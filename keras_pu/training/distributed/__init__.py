"""Data-parallel training on each backend's own engine.

One `Engine` per backend behind a small common interface (process rank and
count, chief, barrier, broadcast of JSON values, averaging of small arrays,
the model/optimizer hooks data parallelism needs):

- JAX: `jax.distributed` + `keras.distribution.DataParallel` over every
  device of every process (`jax_engine`);
- TensorFlow: `tf.distribute.MirroredStrategy` in one process,
  `MultiWorkerMirroredStrategy` driven by `TF_CONFIG` across processes
  (`tf_engine`);
- PyTorch: `torch.distributed` process groups as `torchrun` sets them up,
  with gradient averaging before every optimizer step (DistributedDataParallel's
  rule) and synchronised batch norm (`torch_engine`).

Every engine trains on the same global batch as a single process would: each
process takes its contiguous slice of every global batch (see
`ShardedBatches`), batch-norm statistics are computed over the global batch,
and metrics are reduced across processes, so the loss curve matches the
single-process run with the same `training.batch_size` (the *global* batch).

`engine()` returns the engine of the running program (a single-process
no-op engine until `setup` is called).
"""

import os

from keras_pu import replicas
from keras_pu.training.distributed.base import Engine
from keras_pu.training.distributed.base import ShardedBatches
from keras_pu.training.distributed.base import SingleProcess

MODES = ("none", "data-parallel", "auto")

_ENGINE = SingleProcess()


class DistributedError(RuntimeError):
    """A data-parallel run cannot start; the message says why."""


def engine():
    """The engine of this program: `setup`'s, or the single-process one."""
    return _ENGINE


def launched_by_launcher():
    """True when a launcher started several processes of this program
    (torchrun, TF_CONFIG with several tasks, keras-pu's JAX variables or
    Slurm with several tasks)."""
    import json

    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        return True
    if int(os.environ.get("KERAS_PU_NUM_PROCESSES", "1") or 1) > 1:
        return True
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        try:
            cluster = json.loads(tf_config).get("cluster", {})
        except ValueError:
            return False
        return sum(len(v) for v in cluster.values()) > 1
    return False


def setup(mode, batch_size=None):
    """Starts the engine for `mode` ("none", "data-parallel" or "auto") on
    the running Keras backend and returns it. "auto" means data-parallel
    when a launcher started several processes or several accelerators are
    visible. Calling it again returns the engine already started."""
    global _ENGINE
    import keras

    if mode in (None, "none"):
        return SingleProcess()
    if mode not in MODES:
        raise DistributedError(
            f"Unknown distribution mode {mode!r}; choose one of {MODES}."
        )
    if _ENGINE.active:
        return _ENGINE
    backend = keras.backend.backend()
    if backend == "torch":
        from keras_pu.training.distributed.torch_engine import TorchEngine

        new = TorchEngine()
    elif backend == "jax":
        from keras_pu.training.distributed.jax_engine import JaxEngine

        new = JaxEngine()
    elif backend == "tensorflow":
        from keras_pu.training.distributed.tf_engine import TFEngine

        new = TFEngine()
    else:
        raise DistributedError(
            f"Data-parallel training is not available on the {backend} "
            "backend; use tensorflow, torch or jax."
        )
    if mode == "auto" and not (launched_by_launcher() or new.local_devices() > 1):
        return _ENGINE
    new.start()
    if batch_size is not None and batch_size % new.batch_multiple:
        raise DistributedError(
            f"Data parallelism over {new.replicas} replicas "
            f"({new.world_size} process{'es' if new.world_size > 1 else ''}) "
            f"needs a global batch size divisible by {new.batch_multiple}; "
            f"it is {batch_size}. Change --batch-size (training.batch_size, "
            "the global batch)."
        )
    _ENGINE = new
    replicas.set_cross_replica_sum(new.cross_replica_sum)
    return _ENGINE


def reset():
    """Forgets the engine (tests; the process group stays as it is)."""
    global _ENGINE
    _ENGINE = SingleProcess()
    replicas.set_cross_replica_sum(None)


def cross_replica_sum(x):
    """Sums a tensor over the replicas that each hold part of the global
    batch (identity in one process, and under JAX, whose SPMD program sees
    the global batch). Used for statistics over the batch that only order
    things (no gradient flows through the sum); code below the training
    layer reaches it through `keras_pu.replicas`."""
    return _ENGINE.cross_replica_sum(x)


__all__ = [
    "DistributedError", "Engine", "MODES", "ShardedBatches", "SingleProcess",
    "cross_replica_sum", "engine", "launched_by_launcher", "reset", "setup",
]
