"""Hugging Face Hub access for the zoo: `hf://` handles and file downloads.

Everything goes through huggingface_hub's own cache and revision pinning
(`hf_hub_download`), so `HF_HOME`, `HF_HUB_CACHE`, `HF_ENDPOINT`,
`HF_HUB_OFFLINE` and tokens behave as everywhere else in the ecosystem.

Errors are translated into `DownloadError`s that name the preset, file and
revision and say what to do. The translation never depends on which
huggingface_hub exception class arrives: mirrors and Hub versions disagree
(a missing file is `EntryNotFoundError` on the Hub and
`RepositoryNotFoundError` on some mirrors; a dropped connection is an
httpx error), so only the offline flag and the HTTP status, when there is
one, shape the advice.
"""

import contextlib
import dataclasses
import pathlib
import re

from keras_pu.zoo.errors import DownloadError
from keras_pu.zoo.errors import OfflineCacheMissError
from keras_pu.zoo.errors import ZooError

HF_SCHEME = "hf://"
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclasses.dataclass(frozen=True)
class HubHandle:
    """A parsed `hf://org/repo[@revision]` handle."""

    repo_id: str
    revision: str | None

    def __str__(self):
        rev = f"@{self.revision}" if self.revision else ""
        return f"{HF_SCHEME}{self.repo_id}{rev}"


def is_hf_handle(handle):
    return isinstance(handle, str) and handle.startswith(HF_SCHEME)


def parse_hf_handle(handle):
    """Parses `hf://org/repo` or `hf://org/repo@revision`.

    Raises:
        ValueError: the handle is malformed (with the expected form).
    """
    body = handle[len(HF_SCHEME):]
    repo_id, _, revision = body.partition("@")
    parts = repo_id.split("/")
    if (
        len(parts) != 2
        or not all(_REPO_PART.fullmatch(p) for p in parts)
        or ("@" in body and not revision)
    ):
        raise ValueError(
            f"Malformed Hub handle {handle!r}: expected "
            "'hf://<org>/<repo>' or 'hf://<org>/<repo>@<revision>' (a branch,"
            " tag or commit sha), e.g. 'hf://keras-pu/pu_unet_isic'."
        )
    return HubHandle(repo_id=repo_id, revision=revision or None)


def is_commit_sha(revision):
    return bool(revision) and bool(_COMMIT.fullmatch(revision))


def is_offline():
    """huggingface_hub's offline switch (`HF_HUB_OFFLINE`, read by
    huggingface_hub when it is imported)."""
    import huggingface_hub

    check = getattr(huggingface_hub, "is_offline_mode", None)
    if check is not None:
        return bool(check())
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def endpoint_in_use(endpoint=None):
    import huggingface_hub

    return (endpoint or huggingface_hub.constants.ENDPOINT).rstrip("/")


def cache_dir_in_use(cache_dir=None):
    import huggingface_hub

    return str(cache_dir or huggingface_hub.constants.HF_HUB_CACHE)


def cached_path(repo_id, filename, revision, cache_dir=None):
    """Path of the file in the cache at `revision`, or None (no network)."""
    import huggingface_hub

    path = huggingface_hub.try_to_load_from_cache(
        repo_id, filename, cache_dir=cache_dir, revision=revision
    )
    return path if isinstance(path, str) else None


def commit_of_cached_path(path):
    """The commit a path returned by hf_hub_download belongs to
    (`.../snapshots/<commit>/<file>`, the documented cache layout)."""
    parent = pathlib.Path(path).parent
    if parent.parent.name == "snapshots" and _COMMIT.fullmatch(parent.name):
        return parent.name
    return None


@contextlib.contextmanager
def progress_bars(enabled):
    """huggingface_hub's tqdm bars on or off for the duration (restored)."""
    from huggingface_hub.utils import are_progress_bars_disabled
    from huggingface_hub.utils import disable_progress_bars
    from huggingface_hub.utils import enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if enabled and was_disabled:
        # Respect a user's global "off" (e.g. HF_HUB_DISABLE_PROGRESS_BARS).
        yield
        return
    if not enabled and not was_disabled:
        disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()


def download_file(
    repo_id,
    filename,
    revision,
    *,
    owner,
    retry_hint,
    cache_dir=None,
    endpoint=None,
    force_download=False,
):
    """`hf_hub_download` with errors that say what to do.

    Args:
        repo_id, filename, revision: what to fetch (revision: branch, tag or
            commit sha; None means "main").
        owner: who needs the file, for messages (e.g. "preset 'x'").
        retry_hint: the command that fetches it again, for the offline
            message (e.g. "keras-pu zoo download x").
        cache_dir, endpoint, force_download: as in `hf_hub_download`.

    Returns:
        The local path (inside the Hugging Face cache).

    Raises:
        OfflineCacheMissError: offline and not cached.
        DownloadError: any other failure.
    """
    import huggingface_hub

    from keras_pu.version import __version__

    try:
        return huggingface_hub.hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=cache_dir,
            endpoint=endpoint,
            force_download=force_download,
            library_name="keras-pu",
            library_version=__version__,
        )
    except (KeyboardInterrupt, SystemExit, ZooError):
        raise
    except Exception as e:
        raise _download_error(
            e, repo_id, filename, revision, owner, retry_hint, cache_dir,
            endpoint,
        ) from e


def _download_error(
    error, repo_id, filename, revision, owner, retry_hint, cache_dir, endpoint
):
    rev = revision or "main"
    if is_offline():
        return OfflineCacheMissError(
            f"{owner}: {filename} ({repo_id}@{rev}) is not in the Hugging Face"
            f" cache ({cache_dir_in_use(cache_dir)}), and HF_HUB_OFFLINE=1 "
            "forbids downloading it. Run `"
            f"{retry_hint}` once with network access (same HF_HOME / "
            "HF_HUB_CACHE), or unset HF_HUB_OFFLINE."
        )
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403, 404):
        advice = (
            f"The server answered HTTP {status}: the repository, the revision"
            " or the file does not exist, or the repository is private or "
            "gated (log in with `hf auth login`). Check the name and revision"
            " (`keras-pu zoo info` for presets)."
        )
    else:
        advice = (
            "Check your connection (behind a proxy or mirror set HF_ENDPOINT)"
            " and that the repository, revision and file exist; to use files"
            " cached earlier, set HF_HUB_OFFLINE=1."
        )
    first_line = (str(error).strip().splitlines() or [""])[0][:300]
    return DownloadError(
        f"{owner}: could not download {filename} from "
        f"{endpoint_in_use(endpoint)}/{repo_id} at revision {rev} "
        f"({type(error).__name__}: {first_line}). {advice}"
    )


def human_size(num_bytes):
    size = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
