"""Errors of this package: one root type for bad input and expected failures, never bugs."""


class ProtocolError(Exception):
    """Root of every expected failure in ``protocol``; the CLI prints it as one sentence."""


ROOT_ERROR = ProtocolError
