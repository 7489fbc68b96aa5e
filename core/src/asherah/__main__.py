"""``python -m asherah``: the same command line as the ``asherah`` script."""

from asherah._cli import main

main()
