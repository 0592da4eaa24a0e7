"""TensorFlow: `tf.distribute`.

- one process: `MirroredStrategy` over its GPUs (or its CPU);
- several processes: `MultiWorkerMirroredStrategy`, from `TF_CONFIG`
  (`{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker",
  "index": i}}`; a `"chief"` task counts as process 0).

The model is built, loaded, compiled and trained under `strategy.scope()`;
Keras's TensorFlow trainer runs the step on every replica, scales the loss by
the number of replicas and sums the gradients across them. Each process
feeds its slice of every global batch through
`strategy.distribute_datasets_from_function` (no auto-sharding, no
re-batching: the global batch is the single-process batch). Batch-norm
layers compute their statistics over the global batch (`ops.moments(...,
synchronized=True)`, through an instance hook that is not saved with the
model). Saving under MultiWorkerMirroredStrategy is collective: every
process saves, the non-chief ones into a scratch folder.

The strategy must exist before TensorFlow runs anything else in the process
(it configures the collective ops): `keras-pu train` creates it first.
"""

import json
import os

import numpy as np

from keras_pu.training.distributed.base import Engine
from keras_pu.training.distributed.base import ShardedBatches


def _cluster():
    """(number of processes, this process's rank) from TF_CONFIG."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return 1, 0
    config = json.loads(text)
    cluster = config.get("cluster", {})
    tasks = [("chief", i) for i in range(len(cluster.get("chief", [])))]
    tasks += [("worker", i) for i in range(len(cluster.get("worker", [])))]
    task = config.get("task", {})
    me = (task.get("type", "worker"), int(task.get("index", 0)))
    if me not in tasks:
        raise RuntimeError(
            f"TF_CONFIG: task {me} is not a chief or worker of the cluster "
            f"{sorted(cluster)}; keras-pu runs chief and worker tasks only."
        )
    return len(tasks), tasks.index(me)


class TFEngine(Engine):
    name = "tf.distribute"
    collective_save = False

    def local_devices(self):
        import tensorflow as tf

        return max(1, len(tf.config.list_logical_devices("GPU")))

    def start(self):
        import tensorflow as tf

        self.world_size, self.rank = _cluster()
        if self.world_size > 1:
            self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
            self.name = "tf.distribute.MultiWorkerMirroredStrategy"
            self.collective_save = True
            _fix_multi_worker_reduction()
        else:
            gpus = tf.config.list_logical_devices("GPU")
            self.strategy = tf.distribute.MirroredStrategy(
                [d.name for d in gpus] or None)
            self.name = "tf.distribute.MirroredStrategy"
        self.replicas = self.strategy.num_replicas_in_sync
        self.local_replicas = self.replicas // self.world_size
        self.active = True

    def scope(self):
        return self.strategy.scope()

    # -- collectives (reductions over the strategy's replicas) ---------
    def _sum(self, array):
        """The sum over processes of a numpy array (each process's local
        replicas but the first contribute zeros)."""
        import tensorflow as tf

        array = np.asarray(array)
        strategy = self.strategy

        def contribution():
            context = tf.distribute.get_replica_context()
            first = tf.cast(
                tf.equal(context.replica_id_in_sync_group
                         % self.local_replicas, 0), array.dtype)
            return tf.constant(array) * first

        # These few small eager collectives (barrier, broadcast) would each
        # log TensorFlow's "CollectiveAllReduceStrategy eagerly has
        # significant overhead" warning.
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")
        try:
            per_replica = strategy.run(contribution)
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica,
                                   axis=None).numpy()
        finally:
            logger.setLevel(level)

    def barrier(self):
        if self.world_size > 1:
            self._sum(np.zeros((1,), np.float32))

    def broadcast_json(self, value):
        if self.world_size == 1:
            return super().broadcast_json(value)
        payload = json.dumps(value).encode() if self.is_chief else b""
        length = int(self._sum(np.array([len(payload)], np.int64))[0])
        data = np.zeros(length, np.int32)
        if self.is_chief:
            data[:] = np.frombuffer(payload, np.uint8)
        data = self._sum(data)
        return json.loads(data.astype(np.uint8).tobytes().decode())

    def mean_array(self, array):
        array = np.asarray(array, np.float64)
        if self.world_size == 1:
            return array
        return self._sum(array) / self.world_size

    def cross_replica_sum(self, x):
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return x
        return context.all_reduce(tf.distribute.ReduceOp.SUM, x)

    # -- training --------------------------------------------------------
    def prepare_model(self, model):
        if self.replicas > 1:
            for layer in _batch_norm_layers(model):
                _synchronise_batch_norm(layer)
        self.model = model
        return model

    def prepare_data(self, train, val):
        if self.world_size > 1:
            train = ShardedBatches(train, self.rank, self.world_size)
            val = ShardedBatches(val, self.rank, self.world_size)
        # Keras builds the metrics and losses from a first batch, which it
        # would take from the distributed dataset and average across the
        # workers (a collective that fails on a tuple of per-replica
        # values): build them here from a local batch instead.
        model = self.model
        model._symbolic_build(data_batch=tuple(val[0]))
        object.__setattr__(model, "_maybe_symbolic_build",
                           lambda iterator=None, data_batch=None: None)
        return self._distribute(train), self._distribute(val)

    def _distribute(self, sequence):
        """A dataset of `sequence`'s batches, cut into one part per local
        replica, fed to the replicas as they are."""
        import tensorflow as tf

        first = sequence[0]
        signature = tuple(
            tf.TensorSpec((None,) + tuple(np.shape(part)[1:]),
                          tf.as_dtype(np.asarray(part).dtype))
            for part in first)
        local_replicas = self.local_replicas
        steps = len(sequence)

        def batches():
            for index in range(len(sequence)):
                yield tuple(sequence[index])

        def dataset_fn(input_context):
            dataset = tf.data.Dataset.from_generator(
                batches, output_signature=signature)
            if local_replicas > 1:
                dataset = dataset.unbatch().batch(
                    input_context.get_per_replica_batch_size(
                        int(np.shape(first[0])[0]) * self.world_size),
                    drop_remainder=True)
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.OFF)
            dataset = dataset.with_options(options)
            return dataset.apply(tf.data.experimental.assert_cardinality(
                steps * local_replicas))

        # The generator reads `sequence` lazily, every epoch anew: the epoch
        # set on it (EpochSync) picks that epoch's order and augmentation.
        return self.strategy.distribute_datasets_from_function(
            dataset_fn,
            options=tf.distribute.InputOptions(
                experimental_fetch_to_device=False))


def _fix_multi_worker_reduction():
    """Keras 3.15's TensorFlow trainer averages a step's outputs across
    MultiWorkerMirroredStrategy workers with `strategy.reduce("MEAN", v,
    axis=0)`, which fails on the scalar losses and metrics a step returns
    ("Invalid reduction dimension 0 for input with 0 dimensions"). Average
    them over the replicas (axis=None) instead; other reductions are left to
    Keras."""
    from keras.src.backend.tensorflow import trainer
    from keras.src import tree

    original = trainer.reduce_per_replica
    if getattr(original, "_keras_pu_fixed", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and (
                trainer._collective_all_reduce_multi_worker(strategy)):
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica._keras_pu_fixed = True
    trainer.reduce_per_replica = reduce_per_replica


def _batch_norm_layers(model):
    import keras

    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def _synchronise_batch_norm(layer):
    from keras import ops

    original = layer._moments

    def moments(inputs, mask):
        if mask is not None:
            return original(inputs, mask)
        return ops.moments(inputs, axes=layer._reduction_axes,
                           synchronized=True)

    object.__setattr__(layer, "_moments", moments)
