"""Errors raised by the codecs."""


class CorruptStreamError(ValueError):
    """A compressed byte string is malformed: bad magic, version, header field, size or checksum."""
