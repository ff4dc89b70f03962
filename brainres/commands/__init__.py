"""Subcommands of the ``brainres`` command line; each module offers ``register(subparsers)``."""
