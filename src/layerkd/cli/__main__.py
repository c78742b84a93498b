"""``python -m layerkd.cli …`` (the bench runner starts cells this way)."""

from . import main

main()
