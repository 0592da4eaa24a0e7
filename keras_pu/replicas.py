"""Cross-replica reductions for code below the training layer (SelfReg's
IFD ranks channels by a statistic of the whole batch).

Under data parallelism each replica holds part of the global batch; the
data-parallel engine (`keras_pu.training.distributed`) installs its
reduction here when it starts. Until then, and in one process, the
reduction is the identity.
"""

_CROSS_REPLICA_SUM = None


def set_cross_replica_sum(function):
    """Installs `function(tensor) -> tensor` (None: the identity)."""
    global _CROSS_REPLICA_SUM
    _CROSS_REPLICA_SUM = function


def cross_replica_sum(x):
    """The sum of `x` over the replicas that each hold part of the global
    batch (no gradient flows through it: use it for statistics that only
    order or select things)."""
    if _CROSS_REPLICA_SUM is None:
        return x
    return _CROSS_REPLICA_SUM(x)
