"""One process of a data-parallel (or single-process reference) training run
for tests/test_distributed.py.

    python tests/distributed_worker.py CONFIG_JSON

CONFIG_JSON: {"recipe": {...}, "data": path, "output": path,
"distribute": "none"|"data-parallel", "resume": bool, "crash_after": epoch
or null}. The chief writes `weights.npz` (every variable of the model at the
end of fit) beside the run folder; a run told to crash after an epoch raises
once that epoch's checkpoint is committed and exits with status 3.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_PU_PRECISION", "float32")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

keras.config.disable_traceback_filtering()

CRASH_STATUS = 3


class Crash(Exception):
    pass


def main():
    config = json.loads(sys.argv[1])
    if config.get("watchdog"):
        # A process left waiting in a collective prints where, and exits.
        import faulthandler

        faulthandler.dump_traceback_later(config["watchdog"], exit=True)
    from keras_pu.training import Recipe
    from keras_pu.training import train
    from keras_pu.training import distributed

    saved = {}

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if config.get("crash_after") == epoch + 1:
                raise Crash()

        def on_train_end(self, logs=None):
            saved["weights"] = [np.asarray(w) for w in
                                self.model.get_weights()]

    recipe = Recipe.from_dict(config["recipe"]) if config.get("recipe") else None
    try:
        summary = train(
            None if config.get("resume") else recipe,
            data_path=config["data"],
            output_dir=config["output"],
            resume=bool(config.get("resume")),
            distribute=config.get("distribute", "none"),
            verbose=0,
            callbacks=[Probe()],
        )
    except Crash:
        sys.stdout.flush()
        os._exit(CRASH_STATUS)
    engine = distributed.engine()
    if engine.is_chief and "weights" in saved:
        np.savez(os.path.join(config["output"], "weights.npz"),
                 *saved["weights"])
        print(json.dumps({"summary": summary,
                          "engine": engine.describe()}), flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without tearing the process group down in an order the other
    # processes might wait on.
    os._exit(0)


if __name__ == "__main__":
    main()
