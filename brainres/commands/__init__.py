"""Sub-commands of the ``brainres`` command line, one module each.

Each module defines ``register(subparsers)`` that adds its sub-command(s) and
sets ``func`` to the handler; list new modules in :data:`MODULES`.
"""

MODULES = ["datasets", "validate", "train", "export", "run", "demo"]
