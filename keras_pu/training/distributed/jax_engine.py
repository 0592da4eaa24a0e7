"""JAX: `jax.distributed` across processes and
`keras.distribution.DataParallel` over every device of every process.

The train step is one SPMD program over the global batch: each process feeds
its slice of every global batch (`ShardedBatches`) and Keras assembles the
global array (`jax.make_array_from_process_local_data`); gradients, batch-norm
statistics, metrics and SelfReg's batch statistics are those of the global
batch by construction.

Several processes are joined by `jax.distributed.initialize`, from
`KERAS_PU_COORDINATOR_ADDRESS` (host:port of process 0),
`KERAS_PU_NUM_PROCESSES` and `KERAS_PU_PROCESS_ID`; without them, under Slurm
with several tasks (`SLURM_NTASKS`), JAX's own cluster detection is used.
"""

import json
import os

import numpy as np

from keras_pu.training.distributed.base import Engine


def _process_settings():
    address = os.environ.get("KERAS_PU_COORDINATOR_ADDRESS")
    count = os.environ.get("KERAS_PU_NUM_PROCESSES")
    if address or (count and int(count) > 1):
        missing = [k for k, v in (
            ("KERAS_PU_COORDINATOR_ADDRESS", address),
            ("KERAS_PU_NUM_PROCESSES", count),
            ("KERAS_PU_PROCESS_ID", os.environ.get("KERAS_PU_PROCESS_ID")),
        ) if not v]
        if missing:
            raise RuntimeError(
                f"Multi-process JAX training needs {missing} as well "
                "(see docs/distributed.md)."
            )
        return dict(coordinator_address=address, num_processes=int(count),
                    process_id=int(os.environ["KERAS_PU_PROCESS_ID"]))
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        return {}  # jax.distributed.initialize() detects Slurm
    return None


class JaxEngine(Engine):
    name = "jax.distributed + keras.distribution.DataParallel"

    def local_devices(self):
        import jax

        return jax.local_device_count()

    def start(self):
        import jax
        import keras

        settings = _process_settings()
        if settings is not None and not _initialized():
            jax.distributed.initialize(**settings)
            keras.src.backend.jax.distribution_lib.initialize_rng()
        self.rank = jax.process_index()
        self.world_size = jax.process_count()
        devices = keras.distribution.list_devices()
        self.replicas = len(devices)
        distribution = keras.distribution.DataParallel(
            devices=devices, auto_shard_dataset=False)
        self.distribution = distribution
        # Saving a model creates variables (Keras builds a scratch optimizer)
        # and every variable made under a multi-process distribution is a
        # collective operation: every process saves, the chief for real.
        self.collective_save = self.world_size > 1
        self.active = True

    def describe(self):
        info = super().describe()
        info["devices"] = [str(d) for d in self.distribution.device_mesh
                           .devices.reshape(-1)]
        return info

    def scope(self):
        return self.distribution.scope()

    def barrier(self):
        if self.world_size > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("keras_pu barrier")

    def broadcast_json(self, value):
        if self.world_size == 1:
            return super().broadcast_json(value)
        from jax.experimental import multihost_utils

        payload = json.dumps(value).encode() if self.is_chief else b""
        length = int(multihost_utils.broadcast_one_to_all(
            np.array(len(payload), np.int32)))
        data = np.zeros(length, np.uint8)
        if self.is_chief:
            data[:] = np.frombuffer(payload, np.uint8)
        data = np.asarray(multihost_utils.broadcast_one_to_all(data))
        return json.loads(data.astype(np.uint8).tobytes().decode())

    def mean_array(self, array):
        array = np.asarray(array, np.float64)
        if self.world_size == 1:
            return array
        from jax.experimental import multihost_utils

        gathered = multihost_utils.process_allgather(
            array.astype(np.float32))
        return np.asarray(gathered, np.float64).mean(axis=0)

    def prepare_data(self, train, val):
        # One slice per process; Keras splits it over the local devices.
        return super().prepare_data(train, val)


def _initialized():
    try:
        from jax._src import distributed

        return distributed.global_state.client is not None
    except (ImportError, AttributeError):
        return False
