"""Writing outputs so that nothing the user had is lost or half-written.

Every file or folder keras-pu writes (masks, models, checkpoints, exports,
metrics) goes through `atomic_path`: the content is written to a hidden
temporary path beside the destination (same folder, so same file system)
and renamed onto it with `os.replace`, which is atomic on POSIX and
Windows. A crash, a full disk or a read-only target therefore leaves either
the old file or the new one, never a mix, and the temporary path is removed
on any failure.

`check_overwrite` is the other half: a destination that already exists is
replaced only when the caller says so (`--overwrite` on the command line).
"""

import contextlib
import os
import pathlib
import re
import shutil
import uuid

# What temporary_sibling names look like: .<stem>.tmp-<8 hex>[<suffix>]
_TEMPORARY_NAME = re.compile(r"^\..+\.tmp-[0-9a-f]{8}(\.[^.]*)?$")


class OverwriteError(FileExistsError):
    """The destination exists and replacing it was not asked for."""

    def __init__(self, path, hint="pass --overwrite to replace it"):
        self.path = str(path)
        super().__init__(f"'{self.path}' already exists; {hint}")


def check_overwrite(path, overwrite, hint="pass --overwrite to replace it"):
    """Raises `OverwriteError` when `path` exists and `overwrite` is False."""
    if not overwrite and os.path.lexists(path):
        raise OverwriteError(path, hint)


def temporary_sibling(path):
    """A hidden, unique path beside `path` that keeps its suffix (writers
    such as `model.save` choose the format by suffix)."""
    path = pathlib.Path(path)
    tag = uuid.uuid4().hex[:8]
    return path.with_name(f".{path.stem}.tmp-{tag}{path.suffix}")


def remove_stale_temporaries(folder):
    """Removes the temporary paths a killed process (SIGKILL, power loss:
    no chance to clean up) left in `folder`; returns their names. Call it
    only where no other process is writing (e.g. a run folder on resume)."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if _TEMPORARY_NAME.match(p.name)]
    for path in stale:
        _remove(path)
    return sorted(p.name for p in stale)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path to write a file or a folder to; on success
    it replaces `path` (an existing folder is swapped out and then
    deleted), on failure it is removed and the error propagates.

    Example:
    >>> with atomic_path("out/mask.png") as tmp:
    ...     image.save(tmp, format="PNG")
    """
    path = pathlib.Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if os.path.isdir(tmp) and os.path.isdir(path):
            # os.replace cannot put a folder over a non-empty one: move the
            # old one aside first, and delete it once the new one is in.
            old = temporary_sibling(path)
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            _remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_text(path, text):
    """Writes `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_bytes(path, data):
    """Writes `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
