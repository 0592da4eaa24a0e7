"""PyTorch: `torch.distributed` as `torchrun` sets it up.

Keras's torch trainer has its own train step, so DistributedDataParallel's
rule is applied where Keras hands the gradients over: the optimizer's
`apply` averages them across processes (one flat all-reduce) before the
step. It averages the gradients of the variables trainable *at that step*,
so layers unfrozen mid-run (`training.freeze_encoder_epochs`) are averaged
too. Batch-norm layers compute their statistics over the global batch
(SyncBatchNorm: a differentiable all-reduce of the sums), metrics are
averaged across processes before their results are read, and rank 0's
initial weights are broadcast to every process.
"""

import datetime
import json
import os

import numpy as np

from keras_pu.training.distributed.base import Engine


def _env_int(name, default):
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


class TorchEngine(Engine):
    name = "torch.distributed"

    def local_devices(self):
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 1

    def start(self):
        import torch
        import torch.distributed as dist

        self.world_size = _env_int("WORLD_SIZE", 1)
        self.rank = _env_int("RANK", 0)
        self.local_rank = _env_int("LOCAL_RANK", 0)
        self.replicas = self.world_size
        self.active = True
        if self.world_size == 1:
            if self.local_devices() > 1:
                raise RuntimeError(
                    f"{self.local_devices()} GPUs are visible but this is one "
                    "process: PyTorch data parallelism runs one process per "
                    "GPU. Launch with torchrun (e.g. `torchrun "
                    "--nproc_per_node 8 -m keras_pu.cli train ...`).")
            return
        use_cuda = torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
        self.device = (torch.device("cuda", self.local_rank) if use_cuda
                       else torch.device("cpu"))
        if not dist.is_initialized():
            missing = [k for k in ("MASTER_ADDR", "MASTER_PORT")
                       if k not in os.environ]
            if missing:
                raise RuntimeError(
                    f"WORLD_SIZE is {self.world_size} but {missing} are not "
                    "set: launch with torchrun (e.g. `torchrun "
                    "--nproc_per_node 8 -m keras_pu.cli train ...`)."
                )
            dist.init_process_group(
                backend="nccl" if use_cuda else "gloo",
                timeout=datetime.timedelta(
                    seconds=_env_int("KERAS_PU_DIST_TIMEOUT", 1800)),
            )
        self.backend_name = dist.get_backend()

    def describe(self):
        info = super().describe()
        if self.world_size > 1:
            info["process_group"] = self.backend_name
        return info

    # -- collectives ---------------------------------------------------
    def barrier(self):
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def broadcast_json(self, value):
        if self.world_size == 1:
            return super().broadcast_json(value)
        import torch
        import torch.distributed as dist

        payload = json.dumps(value).encode() if self.is_chief else b""
        length = torch.tensor([len(payload)], dtype=torch.int64,
                              device=self.device)
        dist.broadcast(length, src=0)
        data = torch.zeros(int(length.item()), dtype=torch.uint8,
                           device=self.device)
        if self.is_chief:
            data.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
        dist.broadcast(data, src=0)
        return json.loads(bytes(data.cpu().numpy().tobytes()).decode())

    def mean_array(self, array):
        array = np.asarray(array, np.float64)
        if self.world_size == 1:
            return array
        import torch
        import torch.distributed as dist

        tensor = torch.from_numpy(array.copy()).to(self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.cpu().numpy() / self.world_size

    def cross_replica_sum(self, x):
        if self.world_size == 1:
            return x
        import torch.distributed as dist

        x = x.detach().clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    # -- training --------------------------------------------------------
    def prepare_model(self, model):
        if self.world_size == 1:
            return model
        self._broadcast_variables(model.variables)
        self._average_gradients(model.optimizer)
        self._sync_metrics(model)
        for layer in _batch_norm_layers(model):
            _synchronise_batch_norm(layer)
        return model

    def _broadcast_variables(self, variables):
        import torch
        import torch.distributed as dist

        with torch.no_grad():
            for variable in variables:
                value = variable.value
                if value.is_floating_point() or value.dtype in (
                        torch.int32, torch.int64):
                    dist.broadcast(value.data, src=0)

    def _average_gradients(self, optimizer):
        """Wraps `optimizer.apply` (an instance attribute: nothing of it is
        saved) to average the gradients across processes first. The loss
        of each process is the mean over its slice of the batch, so the
        mean of the processes' gradients is the gradient of the mean over
        the global batch."""
        import torch
        import torch.distributed as dist

        if getattr(optimizer, "_keras_pu_ddp", False):
            return
        apply = optimizer.apply
        world = self.world_size

        def averaged_apply(grads, trainable_variables=None):
            present = [g for g in grads if g is not None]
            if present:
                flat = torch.cat([g.reshape(-1) for g in present])
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
                flat /= world
                offset = 0
                for g in present:
                    n = g.numel()
                    g.copy_(flat[offset:offset + n].view_as(g))
                    offset += n
            return apply(grads, trainable_variables)

        optimizer.apply = averaged_apply
        optimizer._keras_pu_ddp = True

    def _sync_metrics(self, model):
        """Metric results over the global batch: before the results are
        read, every metric's float variables are replaced by their mean over
        the processes, the results computed, and the local values put back
        (the results of sums, means and ratios of sums are those of the
        global batch; the processes call this at the same steps)."""
        import torch

        get_metrics_result = model.get_metrics_result
        engine = self

        def synchronised():
            variables = [
                v for metric in model.metrics for v in metric.variables
                if "float" in str(v.dtype)
            ]
            if not variables:
                return get_metrics_result()
            local = [v.value.detach().clone() for v in variables]
            flat = np.concatenate(
                [t.double().cpu().numpy().reshape(-1) for t in local])
            mean = engine.mean_array(flat)
            offset = 0
            with torch.no_grad():
                for v, t in zip(variables, local):
                    n = t.numel()
                    v.assign(mean[offset:offset + n].reshape(t.shape)
                             .astype(np.float32))
                    offset += n
            try:
                return get_metrics_result()
            finally:
                with torch.no_grad():
                    for v, t in zip(variables, local):
                        v.assign(t)

        model.get_metrics_result = synchronised


def _batch_norm_layers(model):
    import keras

    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def _synchronise_batch_norm(layer):
    """Batch statistics over the global batch (as torch's SyncBatchNorm):
    the sums and the element count are all-reduced with the differentiable
    all-reduce of `torch.distributed.nn`, so the gradient flows through
    every process's share of the statistics. Same formula as Keras's torch
    `moments` (E[x^2] - E[x]^2)."""
    import warnings

    import torch
    from torch.distributed.nn.functional import all_reduce

    # torch 2.13 marks it deprecated in favour of the private
    # torch.distributed._functional_collectives; this public one's backward
    # all-reduces the gradient, as batch-norm sync needs.
    warnings.filterwarnings(
        "ignore", message=r"torch\.distributed\.nn\.functional\.all_reduce "
        "is deprecated", category=FutureWarning)
    original = layer._moments

    def moments(inputs, mask):
        if mask is not None:
            return original(inputs, mask)
        axes = list(layer._reduction_axes)
        x = inputs.float() if inputs.dtype == torch.float16 else inputs
        count = torch.tensor(
            float(np.prod([x.shape[a] for a in axes])), dtype=x.dtype,
            device=x.device)
        sums = torch.cat([
            torch.sum(x, dim=axes).reshape(-1),
            torch.sum(torch.square(x), dim=axes).reshape(-1),
            count.reshape(1),
        ])
        sums = all_reduce(sums)
        channels = (sums.numel() - 1) // 2
        total = sums[-1]
        mean = sums[:channels] / total
        variance = sums[channels:2 * channels] / total - torch.square(mean)
        return mean.to(inputs.dtype), variance.to(inputs.dtype)

    object.__setattr__(layer, "_moments", moments)
