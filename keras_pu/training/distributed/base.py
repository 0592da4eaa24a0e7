"""The common interface of the data-parallel engines, and the
single-process engine (every operation is the identity)."""

import contextlib
import json

import numpy as np

from keras_pu.training.pipeline import BatchWrapper


class Engine:
    """A backend's data-parallel engine. Subclasses set `name` and override
    what their backend needs.

    Attributes:
        rank: this process's index (0 .. world_size - 1).
        world_size: the number of processes.
        replicas: the number of model replicas (devices) over all
            processes: the global batch is split into this many equal parts.
        active: whether the engine is started (several replicas or
            processes may exist).
    """

    name = "none"
    # Checkpoint saving is a collective operation (TensorFlow
    # MultiWorkerMirroredStrategy): every process saves, the chief into the
    # run folder, the others into a scratch folder deleted at once.
    collective_save = False

    def __init__(self):
        self.rank = 0
        self.world_size = 1
        self.replicas = 1
        self.active = False

    # -- process group -------------------------------------------------
    @property
    def is_chief(self):
        return self.rank == 0

    @property
    def batch_multiple(self):
        """The global batch size must be a multiple of this."""
        return self.replicas

    def local_devices(self):
        return 1

    def start(self):
        self.active = True

    def barrier(self):
        """Returns when every process has called it."""

    def broadcast_json(self, value):
        """The chief's `value` (anything `json.dumps` takes), on every
        process. JSON travels as bytes over the engine's own collectives
        (never pickle)."""
        return json.loads(json.dumps(value))

    def mean_array(self, array):
        """The element-wise mean of a float64 numpy array over processes."""
        return np.asarray(array, np.float64)

    def cross_replica_sum(self, x):
        return x

    def describe(self):
        """What run.json records about the engine."""
        return {"engine": self.name, "processes": self.world_size,
                "rank": self.rank, "replicas": self.replicas}

    # -- training --------------------------------------------------------
    @contextlib.contextmanager
    def scope(self):
        """Context in which the model is built, loaded, compiled and fit."""
        yield

    def prepare_model(self, model):
        """Hooks for data-parallel training on a compiled model (after it is
        built or loaded, before `fit`)."""
        return model

    def prepare_data(self, train, val):
        """(train, val) as `fit` takes them on this process: its slice of
        every global batch."""
        if self.world_size == 1:
            return train, val
        return (ShardedBatches(train, self.rank, self.world_size),
                ShardedBatches(val, self.rank, self.world_size))

    def shutdown(self):
        self.active = False


class SingleProcess(Engine):
    """No data parallelism: one process, one replica."""


def _slice(array, rank, world):
    n = len(array)
    if n % world:
        raise ValueError(
            f"A batch of {n} images cannot be split evenly over {world} "
            "processes. The global batch size (training.batch_size) must be "
            "a multiple of the number of replicas, and the training split "
            "must hold at least one global batch."
        )
    size = n // world
    return array[rank * size:(rank + 1) * size]


class ShardedBatches(BatchWrapper):
    """This process's slice of every batch of `sequence`: the global batch
    `b` is cut into `world` contiguous parts of `b / world` images and
    process `rank` gets part `rank` (so the processes' parts, concatenated
    in rank order, are the global batch of a single-process run).

    Order and augmentation come from the seed, the epoch and the batch
    index, so every process cuts the same global batch. A sequence with a
    `batch_part(index, part, parts)` method (`SegmentationSequence`) reads
    and augments this process's images only; of any other, every process
    reads the whole global batch and keeps its part.
    """

    def __init__(self, sequence, rank, world):
        super().__init__(sequence)
        self.rank = int(rank)
        self.world = int(world)

    def __getitem__(self, index):
        if hasattr(self.sequence, "batch_part"):
            return self.sequence.batch_part(index, self.rank, self.world)
        batch = self.sequence[index]
        return tuple(_slice(part, self.rank, self.world) for part in batch)
