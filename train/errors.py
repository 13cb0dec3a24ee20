"""Errors of this package: one root type for bad input and expected failures, never bugs."""


class TrainError(Exception):
    """Root of every expected failure in ``train``; the CLI prints it as one sentence."""


ROOT_ERROR = TrainError
