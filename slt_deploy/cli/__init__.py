"""The ``slt-deploy`` command line: one command per pipeline stage, one
module per command group (:mod:`.training`, :mod:`.deploy`, :mod:`.energy`,
:mod:`.control`, :mod:`.demo`), all on the application in :mod:`.app`.
Nothing outside this package imports it.

Bad input ends in one line on stderr and exit code 2 (no traceback); see
:func:`main`.
"""

from __future__ import annotations

import os
import signal
import sys

import typer

from ..core.errors import RunFailure, UserError
# each module registers its commands on the app; this order is the order of `slt-deploy --help`
from . import training  # noqa: F401,I001
from . import deploy  # noqa: F401
from . import graphs  # noqa: F401
from . import energy  # noqa: F401
from . import control  # noqa: F401
from . import demo  # noqa: F401
from .app import app

__all__ = ["app", "main"]


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (kill, timeout, a service stop) ends a run as Ctrl-C does, so
    that Lava's OS processes are stopped; a forked Lava process dies as before."""
    main_pid = os.getpid()

    def terminated(signum, frame):
        if os.getpid() != main_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and exit code 2 for bad input; 130 when interrupted."""
    args = sys.argv[1:] if argv is None else argv
    _terminate_like_ctrl_c()
    try:
        code = app(args=args, prog_name="slt-deploy", standalone_mode=False)
    except UserError as exc:
        print(f"slt-deploy: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except RunFailure as exc:
        print(f"slt-deploy: failed: {exc}", file=sys.stderr)
        sys.exit(1)
    except typer.TyperException as exc:  # click's usage errors (bad options, missing arguments)
        message = " ".join(exc.format_message().split())
        if message:  # empty when no command was given: the help was shown
            print(f"slt-deploy: error: {message}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    if code == 130:  # with standalone_mode=False click returns Ctrl-C as 130 instead of raising
        print("slt-deploy: interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(code, int) and code:  # another typer.Exit(code), also returned rather than raised
        sys.exit(code)


