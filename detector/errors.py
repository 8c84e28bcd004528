"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""


class DetectorError(Exception):
    """Base for every error the command line reports as a single line and a non-zero exit."""


class AudioError(DetectorError):
    """An audio file is missing, unreadable, empty, too short or holds non-finite samples."""


class ModelError(DetectorError):
    """A model file or its card is missing, corrupt, or does not match the other or the audio path."""


class ConfigError(DetectorError):
    """A configuration value is missing, unknown or out of range; the message names the key."""
