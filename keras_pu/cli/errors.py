"""How a `keras-pu` subcommand fails: one line on stderr, exit code 2.

Every subcommand runs through `run_command`, so that whatever goes wrong
(an unreadable or tampered model, an unsafe config, a preset that is not
published, a full disk, a read-only folder, a bug) ends in one line that
names the thing and says what to do, never in a raw traceback. Set
`KERAS_PU_DEBUG=1` to get the traceback instead (for bug reports).
"""

import errno
import os
import sys

EXIT_FAILURE = 2
DEBUG_VARIABLE = "KERAS_PU_DEBUG"

# errno names absent on a platform (EDQUOT on Windows) are left out.
_WRITE_ERRNOS = {
    getattr(errno, name): text
    for name, text in (
        ("ENOSPC", "no space left on device"),
        ("EDQUOT", "disk quota exceeded"),
        ("EROFS", "read-only file system"),
        ("EACCES", "permission denied"),
        ("EPERM", "operation not permitted"),
    )
    if hasattr(errno, name)
}


def one_line(text):
    """`text` with all whitespace runs (newlines too) made single spaces."""
    return " ".join(str(text).split())


def describe(error):
    """What went wrong, in one line, for the user."""
    from keras_pu.atomic_files import OverwriteError

    if isinstance(error, OverwriteError):
        return str(error)
    if isinstance(error, OSError) and error.errno in _WRITE_ERRNOS:
        where = error.filename or ""
        what = _WRITE_ERRNOS[error.errno]
        target = f" at '{where}'" if where else ""
        return f"{what}{target}. Free space or choose a writable --output."
    if isinstance(error, OSError) and error.filename:
        return f"{error.strerror or error}: '{error.filename}'"
    message = one_line(error)
    if _is_expected(error):
        return message or type(error).__name__
    return (f"{type(error).__name__}: {message} (unexpected; rerun with "
            f"{DEBUG_VARIABLE}=1 for the traceback and report it)")


def _is_expected(error):
    """Errors whose message is written for users (they name the thing)."""
    expected = (ValueError, OSError, ImportError, RuntimeError)
    try:
        from keras_pu.zoo.errors import ZooError

        expected += (ZooError,)
    except ImportError:
        pass
    return isinstance(error, expected)


def report(command, error):
    """Prints `keras-pu COMMAND: error: ...` for `error`; returns 2."""
    print(f"keras-pu {command}: error: {describe(error)}", file=sys.stderr)
    return EXIT_FAILURE


def run_command(command, run, args):
    """Runs a subcommand's `run(args)`; any exception becomes one line on
    stderr and exit code 2 (the traceback with KERAS_PU_DEBUG=1)."""
    try:
        return run(args) or 0
    except KeyboardInterrupt:
        print(f"keras-pu {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001  the whole point
        if os.environ.get(DEBUG_VARIABLE):
            raise
        return report(command, error)
