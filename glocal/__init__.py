"""glocal: hybrid-plasticity spiking networks from meta-training to a neuromorphic board.

This package is the front door only: the ``glocal`` command line composes the commands that each
room of the project (``protocol``, ``firmware_sim``, ``robot_env``, ``train``, ``deploy``) owns.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("glocal")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
