"""Errors of this package: one root type for bad input and expected failures, never bugs."""


class EnvError(Exception):
    """Root of every expected failure in ``robot_env``; the CLI prints it as one sentence."""


ROOT_ERROR = EnvError
