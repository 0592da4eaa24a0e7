"""Errors of the training package, in a module of their own so that the
recipe and the input pipeline can both raise them without importing each
other."""


class RecipeError(ValueError):
    """A recipe is malformed; the message names the file and the key."""
