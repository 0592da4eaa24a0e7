"""One module per dataset keras-pu knows, each declaring `DATASET`, a
`keras_pu.data.scanning.DatasetSpec` (key, names, layout scanner and
detection, split file, citation, licence).

A new dataset is one module here plus its split file
(`keras_pu/data/splits/<key>.json`, made by `scripts/make_splits.py`);
`keras_pu.data.dataset_registry` finds it.
"""
