"""User-facing errors: one line that names the problem; the CLI turns them into exit code 2."""
from __future__ import annotations


class VaekitError(ValueError):
    """A bad input or a bad file: the message is one line that names the thing and the problem."""


class DataError(VaekitError):
    """Input data is missing, malformed, of the wrong shape, dtype or range."""


class CheckpointError(VaekitError):
    """A model folder or checkpoint is missing, corrupt, of another format version or another model."""


class TrainingError(VaekitError):
    """Training cannot continue (e.g. the loss became NaN/inf)."""


class CorruptFileError(VaekitError):
    """A compressed file is truncated, corrupt, of another format version, or not a vaekit file at all."""


class WrongModelError(VaekitError):
    """A compressed file was made with a different model than the one given to decode it."""


class VaekitWarning(UserWarning):
    """Something worked but is probably not what the user wants (e.g. a collapsed posterior); the CLI prints it as
    one line ``warning: …`` on stderr."""
