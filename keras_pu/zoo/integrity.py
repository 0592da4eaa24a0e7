"""File integrity: checksums computed before Keras reads a byte.

Three kinds of expectation, strongest first:

- the registry's sha256 and size (presets: pinned when the preset was built);
- the Hub's own checksum of a downloaded file: huggingface_hub stores each
  cached blob under its ETag, which is the sha256 for LFS files and the git
  blob id (sha1 of "blob <size>\\0" + content) for the others (any other
  Hub repository or revision);
- none, for a local folder the user points at (their own files).
"""

import hashlib
import os
import re

from keras_pu.zoo.errors import IntegrityError

_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def sha256_of(path):
    """Hex sha256 of the file at `path`, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1_of(path):
    """The git blob id of the file (what `git hash-object` prints)."""
    digest = hashlib.sha1()
    digest.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path):
    """`{"sha256": ..., "size": ...}` of a file, as the registry stores it."""
    return {"sha256": sha256_of(path), "size": os.path.getsize(path)}


def is_lfs_pointer(path):
    """True if the file is a Git LFS pointer (a clone without `git lfs`)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(_LFS_POINTER_PREFIX)) == _LFS_POINTER_PREFIX
    except OSError:
        return False


def verify_against_record(path, record, what, fix):
    """Checks size, then sha256, of `path` against a registry `FileRecord`.

    Args:
        path: the local file.
        record: `FileRecord` from the registry.
        what: who the file belongs to, for the message (e.g.
            "model.weights.h5 of preset 'pu_unet_isic'").
        fix: what the user should do if it does not match.

    Raises:
        IntegrityError: naming the file, what was expected and found, and
            `fix`.
    """
    size = os.path.getsize(path)
    if is_lfs_pointer(path):
        raise IntegrityError(
            f"{what} is a Git LFS pointer ({size} bytes), not the file itself "
            f"({path}). Run `git lfs install && git lfs pull` in the "
            "checkout, or load the preset from the Hub.",
            reason="a Git LFS pointer, not the file",
        )
    if size != record.size:
        kind = "truncated" if size < record.size else "larger than expected"
        reason = f"{kind}: {size} bytes instead of {record.size}"
        raise IntegrityError(f"{what} is {reason} ({path}). {fix}", reason=reason)
    actual = sha256_of(path)
    if actual != record.sha256:
        reason = f"altered: sha256 {actual[:12]}... instead of {record.sha256[:12]}..."
        raise IntegrityError(
            f"{what} has been altered: sha256 {actual} instead of "
            f"{record.sha256} ({path}). {fix}",
            reason=reason,
        )


def hub_etag_of(path):
    """The checksum huggingface_hub filed a cached file under, or None.

    hf_hub_download returns `snapshots/<commit>/<file>`, a symlink to
    `blobs/<etag>` (the documented cache layout). Where the cache cannot use
    symlinks (some Windows setups) the snapshot holds a copy, and there is
    nothing to compare with.
    """
    if not os.path.islink(path):
        return None
    etag = os.path.basename(os.path.realpath(path))
    if _HEX64.fullmatch(etag) or _HEX40.fullmatch(etag):
        return etag
    return None


def verify_against_hub_etag(path, what, fix):
    """Checks a cached Hub file against the checksum the Hub gave for it.

    Returns:
        True if checked, False if the cache layout offered no checksum.

    Raises:
        IntegrityError: the content does not match the checksum.
    """
    etag = hub_etag_of(path)
    if etag is None:
        return False
    actual = sha256_of(path) if len(etag) == 64 else git_blob_sha1_of(path)
    if actual != etag:
        algo = "sha256" if len(etag) == 64 else "git blob sha1"
        raise IntegrityError(
            f"{what} does not match the Hub's checksum: {algo} {actual} "
            f"instead of {etag} ({os.path.getsize(path)} bytes, {path}); it "
            f"was truncated or altered after download. {fix}",
            reason=f"{algo} {actual[:12]}... instead of {etag[:12]}...",
        )
    return True


def check_hdf5_signature(path, what, fix):
    """Raises `IntegrityError` unless the file starts like an HDF5 file (a
    saved HTML error page, an LFS pointer or an empty file would not)."""
    with open(path, "rb") as f:
        head = f.read(len(_HDF5_SIGNATURE))
    if head != _HDF5_SIGNATURE:
        if is_lfs_pointer(path):
            detail = "a Git LFS pointer"
        elif not head:
            detail = "empty"
        else:
            detail = f"not an HDF5 file (starts with {head[:8]!r})"
        raise IntegrityError(f"{what} is {detail} ({path}). {fix}", reason=detail)
