"""Publishing a preset folder to the Hugging Face Hub and pinning it.

`publish` uploads `zoo/<preset>/` as one commit with huggingface_hub, then
downloads the files back at that commit through the same path users take
(`keras_pu.zoo.download`, sha256 against the registry) and only then records
the commit sha as the preset's pinned revision in the registry. A preset is
never pinned to files that were not read back intact.
"""

import pathlib

from keras_pu.version import __version__
from keras_pu.zoo import hub
from keras_pu.zoo import integrity
from keras_pu.zoo import registry as registry_lib
from keras_pu.zoo.errors import ZooError
from tools.zoo import cards


def publish(
    name,
    *,
    api=None,
    registry_path=None,
    zoo_dir=None,
    readme_path=None,
    private=False,
    cache_dir=None,
    log=print,
):
    """Uploads `zoo_dir/<name>/` to the preset's Hub repository and pins the
    resulting commit in the registry.

    Args:
        name: the preset.
        api: a `huggingface_hub.HfApi` (default: `HfApi()`, which uses
            `HF_ENDPOINT` and your token from `hf auth login` / `HF_TOKEN`).
        registry_path, zoo_dir: as in `packaging.add_preset`.
        readme_path: a README whose presets table is regenerated (optional).
        private: create the repository as private.
        cache_dir: Hugging Face cache used for the read-back check.
        log: function that prints progress lines.

    Returns:
        The commit sha now pinned in the registry.

    Raises:
        ZooError: the folder does not match the registry, the upload gave no
            commit, or the read-back did not verify.

    Example:

    ```python
    from tools.zoo.publishing import publish

    revision = publish("pu_unet_kvasir")  # after `hf auth login`
    ```
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(library_name="keras-pu", library_version=__version__)
    registry = registry_lib.load_registry(registry_path)
    preset = registry.get(name)
    if not preset.has_weights:
        raise ZooError(
            f"Preset '{name}' has no files in the registry: build it first "
            f"with `python zoo/add_preset.py {name} ...`."
        )
    zoo_dir = pathlib.Path(zoo_dir) if zoo_dir else registry_lib.local_zoo_dir()
    folder = zoo_dir / name if zoo_dir else None
    if folder is None or not folder.is_dir():
        raise ZooError(f"No preset folder for '{name}' ({folder}).")
    present = sorted(p.name for p in folder.iterdir())
    if present != sorted(registry_lib.PRESET_FILES):
        raise ZooError(
            f"{folder} holds {present}; a preset folder holds exactly "
            f"{sorted(registry_lib.PRESET_FILES)}."
        )
    fix = f"Rebuild it with `python zoo/add_preset.py {name} ...`."
    for filename in registry_lib.PRESET_FILES:
        integrity.verify_against_record(
            folder / filename, preset.files[filename],
            f"{filename} of preset '{name}'", fix,
        )

    repo_id = preset.repo_id
    log(f"{name}: uploading {folder} to {repo_id}")
    api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message=f"keras-pu {__version__}: {name}",
    )
    revision = getattr(commit, "oid", None)
    if not hub.is_commit_sha(revision):
        raise ZooError(
            f"The upload of '{name}' returned no commit sha ({commit!r}); "
            "the registry was not changed."
        )
    log(f"{name}: uploaded as commit {revision}; reading it back to verify")

    registry.update_preset(name, hub={"repo_id": repo_id, "revision": revision})
    _read_back(registry, name, api, cache_dir)
    registry.save()
    log(f"{name}: pinned {repo_id}@{revision} in {registry.path}")
    if readme_path is not None:
        cards.update_readme(pathlib.Path(readme_path), registry)
    return revision


def _read_back(registry, name, api, cache_dir):
    """Downloads every file at the new commit and checks it against the
    registry, as `keras_pu.zoo.download` would."""
    preset = registry.get(name)
    endpoint = getattr(api, "endpoint", None)
    for filename in registry_lib.PRESET_FILES:
        path = hub.download_file(
            preset.repo_id,
            filename,
            preset.revision,
            owner=f"preset '{name}' (publish check)",
            retry_hint=f"python zoo/publish.py {name}",
            cache_dir=cache_dir,
            endpoint=endpoint,
        )
        integrity.verify_against_record(
            path,
            preset.files[filename],
            f"{filename} of preset '{name}' read back from the Hub",
            "The upload did not store the file intact; the registry was not "
            "changed. Publish again.",
        )
