"""``python -m slt_deploy.cli``: the command line."""

from . import main

main()
