"""The base class of every error minispeech raises on purpose, and ConfigError.

Each error says in one line which file (and line, or config key) is at fault and what
is wrong, so a command-line tool can print `str(error)` and exit without a traceback.
The subclasses live beside the code that raises them (ConfigError here: the config
reader, the overrides and every model's key checks raise it) and keep the builtin base
their callers already catch:

  AudioError       minispeech.audio.io        an audio file that cannot be read/written
  ManifestError    minispeech.data.manifest   (also a ValueError) a bad manifest line
  ConfigError      minispeech.errors          (also a ValueError) a bad config or key;
                                              minispeech.core.config re-exports it
  CheckpointError  minispeech.core.checkpoint (also a RuntimeError) a bad model file

This module imports nothing, so any layer may import it.
"""

__all__ = ["ConfigError", "MinispeechError"]


class MinispeechError(Exception):
    """Bad input or a fault minispeech detected; the message is one line that names
    the file, line or key at fault (ManifestError lists one such line per problem)."""


class ConfigError(MinispeechError, ValueError):
    """A config, override or `_target_` that cannot be used; the message says where."""
