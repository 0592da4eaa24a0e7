"""Shared machinery of the benchmark scripts: one worker process per
framework, driven over stdin/stdout so that the parent can interleave single
timed steps of every model and every framework in one run (the machine is
shared: interleaving spreads any load change over all contenders alike).

A worker is `python -m benchmarks._harness worker KIND` where KIND is a
Keras backend (`tensorflow`, `torch`, `jax`) or `monai` (pure PyTorch, no
Keras). It answers one JSON line per JSON command:

    {"op": "setup", "models": {...}, "batch": 8, "size": 256,
     "train": true, "jit_compile": "auto"}  -> parameters, FLOPs, settings
    {"op": "step", "model": "pu_unet", "mode": "infer"} -> seconds
    {"op": "quit"}

`python -m benchmarks._harness memory KIND MODEL ...` measures peak resident
memory in a fresh process (see `memory_main`).
"""

import json
import os
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERAS_BACKENDS = ("tensorflow", "torch", "jax")


# --------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------


def worker_env(kind, threads, library=None, extra=None):
    """Environment of a worker: its backend, `threads` compute threads for
    every framework (None: the framework's default), the keras-pu
    checkout it imports (`library`, default this one) and `extra`
    variables (e.g. a backend switch such as TF_ENABLE_ONEDNN_OPTS)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    env.update(extra or {})
    # Pure-PyTorch workers (MONAI, the convolution probe) run under torch;
    # the input-pipeline worker under TensorFlow (its augmentation's
    # default compute backend when TensorFlow is installed).
    env["KERAS_BACKEND"] = {"monai": "torch", "probe": "torch",
                            "pipeline": "tensorflow"}.get(kind, kind)
    # The harness from this checkout, keras_pu from `library`.
    env["KERAS_PU_BENCH_LIBRARY"] = os.path.abspath(library or REPO_ROOT)
    if threads:
        n = str(threads)
        # torch (OpenMP), oneDNN and MKL under TensorFlow and torch
        env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n)
        # TensorFlow's own thread pools
        env.update(TF_NUM_INTRAOP_THREADS=n, TF_NUM_INTEROP_THREADS="1")
        if threads == 1:
            # XLA:CPU (JAX) runs its Eigen ops on one thread
            env["XLA_FLAGS"] = (
                env.get("XLA_FLAGS", "")
                + " --xla_cpu_multi_thread_eigen=false"
                + " intra_op_parallelism_threads=1"
            ).strip()
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Worker:
    """A worker process; `call(op, **args)` returns its JSON answer."""

    def __init__(self, kind, threads=None, library=None, env=None):
        self.kind = kind
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._harness", "worker", kind],
            cwd=REPO_ROOT,
            env=worker_env(kind, threads, library, env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, op, **args):
        self.process.stdin.write(json.dumps(dict(op=op, **args)) + "\n")
        self.process.stdin.flush()
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"{self.kind} worker died (exit {self.process.wait()}); "
                    "its stderr is above."
                )
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])

    def close(self):
        try:
            self.call("quit")
        except (RuntimeError, BrokenPipeError):
            pass
        self.process.wait(timeout=60)


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def machine_description():
    import platform

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def median(values):
    values = sorted(values)
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else 0.5 * (values[mid - 1] + values[mid])


def spread(values):
    """Interquartile range relative to the median (robust to a few steps
    slowed down by another process)."""
    values = sorted(values)
    n = len(values)
    if n < 4:
        return (values[-1] - values[0]) / median(values)
    q1 = values[n // 4]
    q3 = values[(3 * n) // 4]
    return (q3 - q1) / median(values)


def run_interleaved(workers, jobs, repeats, log=print):
    """Times `repeats` single steps of every job, round-robin, the order
    rotated and reversed from round to round so that no job always runs
    first or always after the same job. A job is
    (worker_kind, model_name, mode). Returns {job: [seconds, ...]}."""
    times = {job: [] for job in jobs}
    for r in range(repeats):
        shift = (r // 2) % len(jobs)
        order = jobs[shift:] + jobs[:shift]
        if r % 2:
            # Every other round backwards: a job that follows another one in
            # the same process (warm caches) precedes it next round.
            order = order[::-1]
        for job in order:
            kind, model, mode = job
            answer = workers[kind].call("step", model=model, mode=mode)
            times[job].append(answer["seconds"])
        log(f"  round {r + 1}/{repeats} done (load average "
            f"{load_average():.1f})")
    return times


# --------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------


def build_keras_model(spec, size):
    import keras_pu
    from keras_pu.models.efficientnet_lite import EncoderPUUNet
    from keras_pu.models.efficientnet_lite import EncoderResUNet

    cls = {"res_unet": keras_pu.models.ResUNet,
           "pu_unet": keras_pu.models.PUUNet,
           "encoder_res_unet": EncoderResUNet,
           "encoder_pu_unet": EncoderPUUNet}[spec["arch"]]
    kwargs = dict(spec.get("kwargs", {}))
    if spec["arch"].startswith("encoder_"):
        kwargs.setdefault("encoder_weights", None)  # speed needs no download
    if spec.get("precision"):
        from keras_pu.hardware import dtype_policy_for

        kwargs["dtype"] = dtype_policy_for(spec["precision"])
    return cls(input_shape=(size, size, 3), **kwargs)


def build_monai_model(spec):
    from monai.networks.nets import UNet

    kwargs = dict(
        spatial_dims=2,
        in_channels=3,
        out_channels=1,
        num_res_units=2,
        norm="batch",
        act="relu",
    )
    kwargs.update(spec["kwargs"])
    return UNet(**kwargs)


def _block_flops(block, in_shape, out_shape, fmt):
    """Analytic FLOPs of a ResidualBlock / ProductUnitResidualBlock at
    inference: (convolution FLOPs, elementwise FLOPs, of which PU)."""
    from keras_pu.layers import ProductUnitResidualBlock

    hi, wi, cin = _hwc(in_shape, fmt)
    ho, wo, f = _hwc(out_shape, fmt)
    k = block.kernel_size
    n_out = ho * wo * f
    conv = 2 * k * k * cin * f * ho * wo  # conv1
    conv += 2 * k * k * f * f * ho * wo  # conv2 or the PU exponent kernel
    # bn1, bn2 (a multiply-add each), relu, residual add, final relu
    elementwise = 2 * n_out + 2 * n_out + n_out + n_out + n_out
    if block.shortcut_conv is not None:
        conv += 2 * cin * f * ho * wo
        elementwise += 2 * n_out
    pu = 0
    if isinstance(block, ProductUnitResidualBlock):
        # softplus = log1p(exp(x)): 3; + epsilon: 1; log: 1 (on the input
        # of the unit, n_out elements); clip: 2; exp: 1 (on its output).
        pu = 5 * n_out + 3 * n_out
        elementwise += pu
    return conv, elementwise, pu


def _hwc(shape, fmt):
    if fmt == "channels_last":
        return shape[1], shape[2], shape[3]
    return shape[2], shape[3], shape[1]


def analytic_flops(model):
    """Per-image inference FLOPs counted layer by layer (a multiply-add is 2
    FLOPs; every elementwise op, transcendental or not, is 1 FLOP per
    element; batch normalisation at inference is one multiply-add per
    element). Returns a dict of conv / elementwise / PU elementwise
    FLOPs and their total."""
    import keras

    from keras_pu.layers import ResidualBlock

    fmt = getattr(model, "compute_data_format", "channels_last")
    conv = elementwise = pu = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Permute,
                              keras.layers.Concatenate)):
            continue
        in_shape = tuple(layer.input.shape)
        out_shape = tuple(layer.output.shape)
        if isinstance(layer, ResidualBlock):
            c, e, p = _block_flops(layer, in_shape, out_shape, fmt)
            conv, elementwise, pu = conv + c, elementwise + e, pu + p
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            hi, wi, cin = _hwc(in_shape, fmt)
            ho, wo, cout = _hwc(out_shape, fmt)
            kh, kw = layer.kernel_size
            conv += 2 * kh * kw * cin * cout * hi * wi
            elementwise += ho * wo * cout if layer.use_bias else 0
        elif isinstance(layer, keras.layers.Conv2D):
            ho, wo, cout = _hwc(out_shape, fmt)
            cin = _hwc(in_shape, fmt)[2]
            kh, kw = layer.kernel_size
            conv += 2 * kh * kw * cin * cout * ho * wo
            elementwise += ho * wo * cout if layer.use_bias else 0
        elif isinstance(layer, keras.layers.BatchNormalization):
            h, w, c = _hwc(out_shape, fmt)
            elementwise += 2 * h * w * c
        elif isinstance(layer, keras.layers.ReLU):
            h, w, c = _hwc(out_shape, fmt)
            elementwise += h * w * c
        else:
            raise NotImplementedError(
                f"analytic_flops: no formula for {type(layer).__name__} "
                f"('{layer.name}')"
            )
    return {"conv": conv, "elementwise": elementwise, "pu_elementwise": pu,
            "total": conv + elementwise}


def counted_flops(model, size):
    """Per-image inference FLOPs from the backend's own counter:
    torch.utils.flop_counter (matmul/convolution FLOPs only), XLA's cost
    analysis under JAX (every HLO op, elementwise included), TensorFlow's
    profiler (ops with registered FLOP statistics)."""
    import keras
    import numpy as np

    backend = keras.backend.backend()
    x = np.zeros((1, size, size, 3), "float32")
    if backend == "torch":
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.as_tensor(x), training=False)
        return {"counter": "torch.utils.flop_counter (conv/matmul only)",
                "flops": counter.get_total_flops()}
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def forward(trainable, non_trainable, x):
            return model.stateless_call(
                trainable, non_trainable, x, training=False
            )[0]

        compiled = jax.jit(forward).lower(trainable, non_trainable, x)
        cost = compiled.compile().cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0]
        return {"counter": "XLA cost analysis (all ops)",
                "flops": int(cost.get("flops", 0)),
                "transcendentals": int(cost.get("transcendentals", 0))}
    if backend == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )

        fn = tf.function(lambda x: model(x, training=False))
        concrete = fn.get_concrete_function(
            tf.TensorSpec((1, size, size, 3), tf.float32)
        )
        frozen = convert_variables_to_constants_v2(concrete)
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        info = tf.compat.v1.profiler.profile(
            graph=frozen.graph, options=options
        )
        return {"counter": "TF profiler float_operation (registered ops)",
                "flops": int(info.total_float_ops)}
    raise NotImplementedError(backend)


class KerasContender:
    def __init__(self, spec, batch, size, train, jit_compile):
        import keras
        import numpy as np

        self.model = build_keras_model(spec, size)
        rng = np.random.default_rng(0)
        self.x = rng.random((batch, size, size, 3), dtype=np.float32)
        self.y = (rng.random((batch, size, size, 1)) > 0.5).astype("float32")
        self.model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        self.train = train
        self.size = size

    def info(self, count_flops=True):
        try:
            flops = {"analytic": analytic_flops(self.model)}
        except NotImplementedError as e:  # e.g. depthwise encoders
            flops = {"analytic": {"error": str(e)}}
        if count_flops:
            try:
                flops["backend"] = counted_flops(self.model, self.size)
            except Exception as e:  # a failing counter must not stop timing
                flops["backend"] = {"error": f"{type(e).__name__}: {e}"[:300]}
        return {
            "params": int(self.model.count_params()),
            "flops": flops,
            "compute_data_format": getattr(
                self.model, "compute_data_format", None
            ),
            "jit_compile": self.model.jit_compile,
        }

    def warm_up(self, steps=2):
        for _ in range(steps):
            self.step("infer")
            if self.train:
                self.step("train")

    def step(self, mode):
        if mode == "infer":
            self.model.predict_on_batch(self.x)
        else:
            self.model.train_on_batch(self.x, self.y)


class MonaiContender:
    def __init__(self, spec, batch, size, train, jit_compile):
        import torch

        self.torch = torch
        self.model = build_monai_model(spec)
        generator = torch.Generator().manual_seed(0)
        self.x = torch.rand((batch, 3, size, size), generator=generator)
        self.y = (torch.rand((batch, 1, size, size), generator=generator)
                  > 0.5).float()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.loss = torch.nn.BCEWithLogitsLoss()
        self.train = train
        self.size = size
        # torch.autocast in bf16: PyTorch's own mixed precision, the fair
        # peer of a Keras model under the mixed_bfloat16 policy.
        self.autocast = spec.get("precision") == "bfloat16"
        if self.autocast:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)

    def _precision_scope(self):
        import contextlib

        if not self.autocast:
            return contextlib.nullcontext()
        return self.torch.autocast("cpu", dtype=self.torch.bfloat16)

    def info(self, count_flops=True):
        from torch.utils.flop_counter import FlopCounterMode

        x = self.x[:1]
        self.model.eval()
        with self.torch.no_grad(), FlopCounterMode(display=False) as counter:
            self.model(x)
        return {
            "params": int(sum(p.numel() for p in self.model.parameters())),
            "flops": {"backend": {
                "counter": "torch.utils.flop_counter (conv/matmul only)",
                "flops": counter.get_total_flops()}},
        }

    def warm_up(self, steps=2):
        for _ in range(steps):
            self.step("infer")
            if self.train:
                self.step("train")

    def step(self, mode):
        torch = self.torch
        if mode == "infer":
            self.model.eval()
            with torch.inference_mode(), self._precision_scope():
                self.model(self.x)
        else:
            self.model.train()
            self.optimizer.zero_grad(set_to_none=True)
            with self._precision_scope():
                loss = self.loss(self.model(self.x).float(), self.y)
            loss.backward()
            self.optimizer.step()


class ConvProbeContender:
    """Plain-PyTorch 3x3 convolutions (forward, backward-data and
    backward-weights) at a U-Net's widths and resolutions, channels-last:
    the rate this machine's convolution kernels reach in float32 and bf16,
    the yardstick of the models' achieved TFLOP/s. Modes: "float32",
    "bfloat16"."""

    def __init__(self, spec, batch, size, train, jit_compile):
        import torch

        self.torch = torch
        self.tensors = {}
        self.flops = 0
        for level, width in enumerate(spec["widths"]):
            side = size // 2**level
            self.flops += 3 * 2 * 9 * width * width * side * side * batch
            for dtype in ("float32", "bfloat16"):
                x = torch.randn(batch, width, side, side).to(
                    memory_format=torch.channels_last,
                    dtype=getattr(torch, dtype)).requires_grad_()
                w = (torch.randn(width, width, 3, 3) * 0.05).to(
                    memory_format=torch.channels_last,
                    dtype=getattr(torch, dtype)).requires_grad_()
                self.tensors.setdefault(dtype, []).append((x, w))

    def info(self, count_flops=True):
        return {"flops_per_step": self.flops}

    def warm_up(self, steps=2):
        for _ in range(steps):
            self.step("float32")
            self.step("bfloat16")

    def step(self, mode):
        F = self.torch.nn.functional
        for x, w in self.tensors[mode]:
            y = F.conv2d(x, w, padding=1)
            y.backward(self.torch.ones_like(y))


class PipelineContender:
    """One batch of the training input pipeline: `SegmentationSequence`
    with the decode cache and the recipes' default augmentation, on
    Kvasir-SEG (`spec["data"]`) or synthetic images of Kvasir-SEG's size."""

    def __init__(self, spec, batch, size, train, jit_compile):
        import tempfile

        from keras_pu.data import SegmentationAugmentation
        from keras_pu.data import SegmentationSequence
        from keras_pu.data import load_dataset

        root = spec.get("data")
        if not root:
            from tests.dataset_factory import make_kvasir

            self._tmp = tempfile.TemporaryDirectory()
            root = self._tmp.name
            make_kvasir(root, n=4 * batch)
        dataset = load_dataset("kvasir-seg", root)
        self.sequence = SegmentationSequence(
            dataset, image_size=size, batch_size=batch, shuffle=True,
            augmentation=SegmentationAugmentation(seed=0), cache="memory",
            drop_remainder=True)
        self.index = 0

    def info(self, count_flops=True):
        return {"images": len(self.sequence.samples)}

    def warm_up(self, steps=2):
        for _ in range(steps):
            self.step("batch")

    def step(self, mode):
        self.sequence[self.index % len(self.sequence)]
        self.index += 1


CONTENDERS = {"probe": ConvProbeContender, "pipeline": PipelineContender}


def _reply(payload):
    sys.stdout.write("RESULT " + json.dumps(payload) + "\n")
    sys.stdout.flush()


def worker_main(kind):
    # Keep stdout for the protocol: libraries' prints go to stderr.
    protocol = sys.stdout
    sys.stdout = sys.stderr
    contenders = {}
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            break
        sys.stdout = protocol
        try:
            if op == "setup":
                info = {}
                sys.stdout = sys.stderr
                for name, spec in command["models"].items():
                    cls = CONTENDERS.get(kind) or (
                        MonaiContender if kind == "monai" else KerasContender
                    )
                    start = time.perf_counter()
                    contender = cls(
                        spec,
                        command["batch"],
                        command["size"],
                        command.get("train", False),
                        command.get("jit_compile", "auto"),
                    )
                    contender.warm_up()
                    contenders[name] = contender
                    info[name] = contender.info(
                        command.get("count_flops", True)
                    )
                    info[name]["setup_seconds"] = time.perf_counter() - start
                sys.stdout = protocol
                _reply({"models": info, "versions": _versions(kind)})
            elif op == "step":
                contender = contenders[command["model"]]
                start = time.perf_counter()
                contender.step(command["mode"])
                _reply({"seconds": time.perf_counter() - start})
            else:
                _reply({"error": f"unknown op {op}"})
        finally:
            sys.stdout = sys.stderr


def _versions(kind):
    import importlib.metadata as md

    names = {"tensorflow": ["keras", "tensorflow"],
             "jax": ["keras", "jax"],
             "torch": ["keras", "torch"],
             "monai": ["monai", "torch"],
             "probe": ["torch"],
             "pipeline": ["keras", "tensorflow", "Pillow"]}[kind]
    out = {}
    for name in names:
        for dist in (name, f"{name}-cpu"):
            try:
                out[name] = md.version(dist)
                break
            except md.PackageNotFoundError:
                continue
    return out


# --------------------------------------------------------------------------
# Peak memory (a fresh process per measurement)
# --------------------------------------------------------------------------


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak():
    # Writing 5 to clear_refs resets the peak resident set size (VmHWM).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def memory_main(kind, spec_json, batch, size, jit_compile):
    """Peak resident memory above the framework's baseline: RSS after
    importing the framework is the baseline; the model is built, then the
    peak over warm-up plus 3 inference steps is read, the peak is reset,
    and the peak over 3 training steps is read."""
    protocol = sys.stdout
    sys.stdout = sys.stderr
    spec = json.loads(spec_json)
    if kind == "monai":
        import torch  # noqa: F401
        import monai  # noqa: F401
    else:
        import keras  # noqa: F401
        import keras_pu  # noqa: F401
        import numpy  # noqa: F401

        if kind == "tensorflow":
            import tensorflow  # noqa: F401
        elif kind == "jax":
            import jax  # noqa: F401
        else:
            import torch  # noqa: F401
    baseline = _status_kib("VmRSS")
    cls = MonaiContender if kind == "monai" else KerasContender
    contender = cls(spec, batch, size, True, jit_compile)
    _reset_peak()
    for _ in range(4):
        contender.step("infer")
    infer_peak = _status_kib("VmHWM")
    _reset_peak()
    for _ in range(4):
        contender.step("train")
    train_peak = _status_kib("VmHWM")
    sys.stdout = protocol
    _reply({
        "baseline_mib": baseline / 1024,
        "infer_peak_mib": (infer_peak - baseline) / 1024,
        "train_peak_mib": (train_peak - baseline) / 1024,
    })


def measure_memory(kind, spec, batch, size, jit_compile="auto", threads=None,
                   library=None):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks._harness", "memory", kind,
         json.dumps(spec), str(batch), str(size), str(jit_compile)],
        cwd=REPO_ROOT,
        env=worker_env(kind, threads, library),
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"memory measurement of {kind} failed")


def _parse_jit(value):
    return {"auto": "auto", "True": True, "False": False}[value]


def _import_library():
    """Puts the keras-pu checkout named by the parent first on sys.path."""
    library = os.environ.get("KERAS_PU_BENCH_LIBRARY")
    if library:
        sys.path.insert(0, library)


if __name__ == "__main__":
    _import_library()
    if sys.argv[1] == "worker":
        worker_main(sys.argv[2])
    elif sys.argv[1] == "memory":
        memory_main(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                    int(sys.argv[5]), _parse_jit(sys.argv[6]))
    else:
        raise SystemExit(__doc__)
