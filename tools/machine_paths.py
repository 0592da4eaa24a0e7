"""Absolute paths of the machine that wrote a file: what the maintainer tools
remove before a file is published (a preset's metrics and recipe) or
committed (a recorded training run), since no one else can resolve them."""


def is_machine_path(value):
    """Whether a string is an absolute filesystem path (POSIX, home-relative
    or Windows): something only the machine that wrote it can resolve."""
    if not isinstance(value, str) or not value:
        return False
    return (value.startswith(("/", "~/", "\\\\"))
            or (len(value) > 2 and value[0].isalpha() and value[1] == ":"
                and value[2] in "\\/"))


def without_machine_paths(data):
    """A copy of a JSON value with every machine path (`is_machine_path`)
    replaced by None, at any depth."""
    if isinstance(data, dict):
        return {k: without_machine_paths(v) for k, v in data.items()}
    if isinstance(data, list):
        return [without_machine_paths(v) for v in data]
    return None if is_machine_path(data) else data
