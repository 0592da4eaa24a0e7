"""`keras_pu.export.export_model` under torch does not flood the console
with torch.jit TracerWarnings (one per traced Python number), and leaves the
caller's warning filters as they were."""

import importlib.util
import warnings

import keras
import pytest

from keras_pu.export import export_model
from keras_pu.models import PUUNet
from tests.test_models import TINY


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch.jit tracing only")
@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript")),
    reason="needs onnx and onnxscript (pip install 'keras-pu[export]')",
)
def test_onnx_export_under_torch_emits_no_tracer_warnings(tmp_path):
    import torch

    model = PUUNet(**TINY)
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_model(model, tmp_path / "pu.onnx", format="onnx")
        warnings.warn("after export", UserWarning)
    tracer = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    assert tracer == []
    assert (tmp_path / "pu.onnx").is_file()
    assert any(str(w.message) == "after export" for w in caught)
    assert warnings.filters == filters_before
