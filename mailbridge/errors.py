"""Error classes shared by every stage.

User errors (a broken config, a bad command argument) and system errors (a database
that is down) get different answers: the first tell the admin what to fix, the second
are retried or reported as temporary failures (SMTP 451, exit 75).
"""


class MailbridgeError(Exception):
    """Base class for errors this project raises on purpose."""


class ConfigError(MailbridgeError):
    """The admin's config is wrong; the message names file, line, key and what to do."""


class TemporaryFailure(MailbridgeError):
    """Something outside our control failed; the caller should retry later."""


class NotFound(MailbridgeError):
    """A ticket, message or queue entry named by the user does not exist."""
