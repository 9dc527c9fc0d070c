"""``python -m earmark``: the same command as the ``earmark`` console script."""

from .cli import main

main()
