"""Error classes shared by every stage.

User errors (a broken config, a bad command argument) get these classes and a message
that says what to fix; system errors (a database that is down) stay ordinary exceptions
and are retried or reported as temporary failures (SMTP 451, exit 75).
"""


class MailbridgeError(Exception):
    """Base class for errors this project raises on purpose."""


class ConfigError(MailbridgeError):
    """The admin's config is wrong; the message names file, line, key and what to do."""


class NotFound(MailbridgeError):
    """A ticket, message or queue entry named by the user does not exist."""
