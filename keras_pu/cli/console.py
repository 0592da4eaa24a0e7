"""What the `keras-pu` command writes to the console, and nothing else.

Two sources of stray output are handled here, by the launcher
(`keras_pu_cli`), never inside the library:

- Keras's progress bars always carry ANSI colour codes (bold counts, a
  green bar), which end up as garbage in a log file. When a stream is not a
  terminal, or `NO_COLOR` is set (https://no-color.org), the escape
  sequences are removed from what is written to it.
- TensorFlow prints INFO lines from C++ when it is imported ("oneDNN custom
  operations are on", CPU-instruction notes) that no environment variable
  silences (TF_CPP_MIN_LOG_LEVEL is read only after them). They say nothing
  about the user's work, and under a torch or JAX model TensorFlow is only a
  helper (keras_pu.data.augment resamples on it when installed). The
  command drops them on every backend; TensorFlow's warnings and errors
  are kept.
"""

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile

# CSI sequences: colours, bold, cursor movement.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# TensorFlow's import-time INFO output: absl's pre-initialisation banner,
# glog-style INFO lines ("I0000 00:00:... port.cc:153] ...") and the
# continuation line of the CPU-feature note.
_TENSORFLOW_INFO_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|I\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|To enable the following instructions: )"
)


def colour_allowed(stream):
    """True if ANSI colour may be written to `stream`."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


class PlainTextStream:
    """Wraps a text stream and removes ANSI escape sequences from every
    write; everything else is the wrapped stream's."""

    def __init__(self, stream):
        self.wrapped = stream

    def write(self, text):
        self.wrapped.write(_ANSI_ESCAPE.sub("", text))
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self.wrapped, name)


@contextlib.contextmanager
def plain_output_unless_terminal():
    """Within the block, sys.stdout / sys.stderr drop ANSI codes unless
    they are terminals (and NO_COLOR is unset)."""
    saved = sys.stdout, sys.stderr
    if not colour_allowed(sys.stdout):
        sys.stdout = PlainTextStream(sys.stdout)
    if not colour_allowed(sys.stderr):
        sys.stderr = PlainTextStream(sys.stderr)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved


def quiet_tensorflow_info():
    """The first `import tensorflow` (if any happens) drops TensorFlow's
    import-time INFO lines, and its later C++ INFO logs are off
    (TF_CPP_MIN_LOG_LEVEL=1 unless the user set it). Warnings and errors
    still show."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` on sys.path as usual and wraps its loader so that
    the import runs with TensorFlow's INFO lines filtered out of fd 2. It
    stays in place until the import happens (`importlib.util.find_spec`
    asks it too, without importing)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredStderrLoader(spec.loader, self)
        return spec


class _FilteredStderrLoader(importlib.abc.Loader):
    def __init__(self, loader, finder):
        self.loader = loader
        self.finder = finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        if self.finder in sys.meta_path:  # one import: TensorFlow's own finders do the rest
            sys.meta_path.remove(self.finder)
        with _stderr_fd_without(_TENSORFLOW_INFO_LINE):
            self.loader.exec_module(module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


@contextlib.contextmanager
def _stderr_fd_without(pattern):
    """Collects everything written to file descriptor 2 (C++ logs included)
    during the block, then writes it back without the lines matching
    `pattern`."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [
                line for line in text.splitlines(keepends=True)
                if not pattern.match(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
