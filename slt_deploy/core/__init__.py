"""What every stage uses: the one-line user error, atomic files, the
Python 3.11 compat layer for Lava and the environment report."""

from .errors import RunFailure, UserError

__version__ = "0.1.0"

__all__ = ["RunFailure", "UserError", "__version__"]
