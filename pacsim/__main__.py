"""``python -m pacsim``: the command line."""

from .cli import main

main()
