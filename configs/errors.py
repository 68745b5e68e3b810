"""User-facing errors. Every package raises these for bad input; the CLI prints them as one line."""


class UserError(Exception):
    """Bad input from the user. The message is one line naming the problem and the fix."""


class ConfigError(UserError, ValueError):
    """A config file or override that does not fit the schema."""
