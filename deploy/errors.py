"""Errors of this package: one root type for bad input and expected failures, never bugs."""


class DeployError(Exception):
    """Root of every expected failure in ``deploy``; the CLI prints it as one sentence."""


ROOT_ERROR = DeployError
