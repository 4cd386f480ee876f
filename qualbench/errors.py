"""Errors that end a run with a clear one-line message instead of a traceback."""


class QualBenchError(Exception):
    """Base class: the message names the file and line or the cause."""


class DataError(QualBenchError):
    """A data file is malformed: bad JSON, unknown type, missing field, answer outside the options."""


class ConfigError(QualBenchError):
    """The composed config asks for something impossible."""


class ResumeRefused(ConfigError):
    """The run directory holds predictions made under another config; nothing in it was changed."""
