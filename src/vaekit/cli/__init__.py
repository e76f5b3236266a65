"""The ``vaekit`` command line (top layer): the root app in :mod:`vaekit.cli.main`, core commands, the demo."""
