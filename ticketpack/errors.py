"""The one exception hierarchy of ticketpack.

The library raises these and never prints or exits; the CLI maps each class
to a one-line message and the exit code in ``exit_code``.
"""


class TicketpackError(Exception):
    """Base of every error ticketpack raises on purpose."""

    exit_code = 1


class UsageError(TicketpackError):
    """A wrong argument, path or option value given by the caller."""

    exit_code = 2


class ConfigError(UsageError):
    """A model or training configuration that does not fit together."""


class DataError(UsageError):
    """A corpus, token shard or tokenizer that cannot be read or is unusable."""


class OutputWriteError(UsageError, OSError):
    """An output file that could not be written (full disk, no permission); nothing was replaced."""


class BudgetExceededError(TicketpackError):
    """An artifact (plus code) larger than the byte budget."""

    exit_code = 1


class VerificationError(TicketpackError):
    """Regenerated weights do not match the hash stored in the artifact."""

    exit_code = 1


class ArtifactError(TicketpackError):
    """An artifact or checkpoint that is malformed, corrupt or hostile."""

    exit_code = 3


class BadMagicError(ArtifactError):
    """The file does not start with the ticketpack magic bytes."""


class UnsupportedVersionError(ArtifactError):
    """The artifact's format version is newer (or older) than this reader."""


class TruncatedError(ArtifactError):
    """The file ends before a declared field or section does."""


class ChecksumError(ArtifactError):
    """A stored checksum does not match the bytes read."""


class HeaderError(ArtifactError):
    """The header is not valid JSON or a field has a wrong type or value."""


class LimitError(ArtifactError):
    """A declared size or count exceeds a safety cap."""


class DecodeError(ArtifactError):
    """A payload section cannot be decompressed or decoded as declared."""


class CheckpointError(ArtifactError):
    """A training checkpoint that is not a valid ticketpack checkpoint."""
