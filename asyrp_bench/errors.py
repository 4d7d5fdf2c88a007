"""Exceptions with messages meant for people.

Every error the package raises on purpose derives from :class:`AsyrpBenchError`; the CLI prints its message
(without a traceback) and exits with status 2. Messages say what is wrong, where, and what to do about it.
"""

from __future__ import annotations


class AsyrpBenchError(Exception):
    """Base class of every deliberate asyrp-bench error."""


class UnknownNameError(AsyrpBenchError, KeyError):
    """A registry lookup missed (the message lists valid names and a "did you mean")."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(AsyrpBenchError, ValueError):
    """A configuration (suite, preset, editor parameters) is invalid."""


class InputError(AsyrpBenchError, ValueError):
    """A tensor, image or folder given to the library does not fit its contract."""


class CheckpointError(AsyrpBenchError, ValueError):
    """A weights file is not what it claims to be (wrong keys, shapes, format or metadata)."""


class WeightsNotFoundError(AsyrpBenchError, FileNotFoundError):
    """A weights file or data folder is missing; the message names it and where it goes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TrainingDivergedError(AsyrpBenchError, FloatingPointError):
    """A loss became NaN or Inf during training."""


class DiskWriteError(AsyrpBenchError, OSError):
    """A result file could not be written (disk full, no permission); the message names the file."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
