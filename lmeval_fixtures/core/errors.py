"""The one family of errors the suite raises on purpose.

Every failure that is the input's fault (an option, a data file, a checkpoint, a record, a
baseline) is an ``LmevalError`` whose message is one line naming the file or option and
what to do. The command line and ``Run.finish`` catch this family (and the operating
system's ``OSError``) and nothing else, so any other exception is a bug in the suite: it
surfaces as a traceback and a distinct exit status, never as "usage error". As in httpx,
a caller catches the base to handle them all, or one branch to handle one kind.

Each class keeps the builtin base it had before the family existed (``ValueError`` for
most), so code that caught those still catches them.
"""

from __future__ import annotations


class LmevalError(Exception):
    """Base of every error the suite raises on purpose; its message is one line for the user."""


# -- usage: options, declarations, commands ---------------------------------------------------

class UsageError(LmevalError, ValueError):
    """An option value that cannot work; reported before any item runs."""


class CommandError(UsageError):
    """A command-line usage problem worth one line on stderr and exit status 2."""


class RegistryError(UsageError):
    """A declaration that clashes with one already made; the message names both."""


class TaskFileError(UsageError):
    """A task file that cannot be read as a task; the message names the file and the key."""


class ExportError(UsageError):
    """An output folder export-hf must not write into; the message is one line naming it."""


class MissingExtra(LmevalError, ImportError):
    """An optional dependency (an extra such as ``hf``) is needed and not installed."""


# -- data -------------------------------------------------------------------------------------

class DataUnavailable(LmevalError):
    """No local copy and no hub access: the items that need the data are skipped with this reason."""


class DataError(LmevalError, ValueError):
    """Data that exists but is unusable (bad encoding, bad rows); the message names the file."""


class RowError(DataError):
    """One document that a task file's rules cannot render; the reader adds the file and row."""


class HubUnavailable(DataError, DataUnavailable):
    """The hub could not serve a dataset. A ``DataError`` (fetch-data cannot do its job, the CLI
    prints one line) and a ``DataUnavailable`` (the suite's word for data that is not here)."""


# -- checkpoints ------------------------------------------------------------------------------

class CheckpointError(LmevalError):
    """A checkpoint that cannot be evaluated; the message is one line naming the file."""


class TokenizerError(LmevalError, ValueError):
    """A tokenizer file that cannot be used; the message names the file (the loader reports it
    as a ``CheckpointError`` of the checkpoint it belongs to)."""


# -- records ----------------------------------------------------------------------------------

class RecordError(LmevalError, ValueError):
    """A metrics record that cannot be used as asked."""


class RecordInvalid(RecordError):
    """A record that does not match the shipped schema."""


class RecordMergeError(RecordError):
    """Two records that do not describe the same checkpoint and data."""


class RecordsNotFound(RecordError):
    """No readable metrics.json where one was named; the message names the path."""


# -- baselines --------------------------------------------------------------------------------

class BaselineError(LmevalError, ValueError):
    """A baseline file that cannot be used; the message names the file."""


class BaselineTargetError(BaselineError):
    """A baseline folder that must not be replaced; the message names it and why."""
