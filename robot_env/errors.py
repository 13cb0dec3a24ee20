"""Errors of this package: one root type for bad input and expected failures, never bugs."""


class EnvError(Exception):
    """Root of every expected failure in ``robot_env``; the CLI prints it as one sentence."""


class FaultSpecError(EnvError):
    """A fault spec or record is malformed, or names a kind, key or value this domain lacks."""


class FaultTargetError(EnvError):
    """A fault names a joint, channel, body or leg that the wrapped environment does not have."""


ROOT_ERROR = EnvError
