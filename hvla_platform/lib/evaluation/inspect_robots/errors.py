"""The plugins' configuration error: a :class:`ValueError` that inspect-robots' command line shows
as one line (it prints an ``inspect_robots.errors.ConfigError`` raised by a component factory
instead of a traceback, and exits 1)."""

from inspect_robots.errors import ConfigError


class PluginConfigError(ConfigError, ValueError):
    """A plugin cannot be built as asked (bad argument, unreachable or unsuitable policy server…)."""
