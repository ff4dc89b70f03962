"""Sub-commands of the ``brainres`` command line, one module each.

Each module defines ``register(subparsers)`` that adds its sub-command(s) and
sets ``func`` to the handler; list new modules in :data:`MODULES`.
"""

import argparse

MODULES = ["datasets", "validate", "train", "export", "run", "demo"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default once: not where its help already says it, nor for on/off flags or
    options without one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is None or action.required
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))):
            return text  # an option without a default says in its help what leaving it out means
        return super()._get_help_string(action)
