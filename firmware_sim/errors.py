"""Errors of this package: one root type for bad input and expected failures, never bugs."""


class BoardError(Exception):
    """Root of every expected failure in ``firmware_sim``; the CLI prints it as one sentence."""


ROOT_ERROR = BoardError
