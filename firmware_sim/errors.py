"""Errors of this package: one root type for bad input and expected failures, never bugs."""


class BoardError(Exception):
    """Root of every expected failure in ``firmware_sim``; the CLI prints it as one sentence."""


class DesignRuleError(BoardError):
    """An image breaks a design rule of the board (one sentence per broken rule)."""

    def __init__(self, violations: list[str]) -> None:
        self.violations = violations
        super().__init__(" ".join(violations))


class FaultError(BoardError):
    """A fault record is malformed or names something the board does not have."""


class FlashError(BoardError):
    """The emulated flash cannot store or boot an image."""


ROOT_ERROR = BoardError
