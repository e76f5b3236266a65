"""``python -m vaekit``: the same as the ``vaekit`` command."""
from vaekit.cli.main import main

main()
