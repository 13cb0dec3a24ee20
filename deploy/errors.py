"""Errors of this package: one root type for bad input and expected failures, never bugs."""


class DeployError(Exception):
    """Root of every expected failure in ``deploy``; the CLI prints it as one sentence."""


class MappingError(DeployError):
    """The network does not fit the board profile (a design rule, or too few cores)."""


class ParityError(DeployError):
    """Two engines that must agree (torch and onnxruntime) do not."""


ROOT_ERROR = DeployError
