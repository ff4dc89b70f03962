"""Exceptions raised by brainres.

Every error about data names the file, column or stimulus it is about, so a
scientist can find the problem without a debugger.
"""

from __future__ import annotations


class BrainresError(Exception):
    """Base class of every error brainres raises on purpose."""


class ProblemsError(BrainresError, ValueError):
    """Several things are wrong with one input; every problem is listed, each naming its key."""

    def __init__(self, problems, where: str = ""):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.where = where
        prefix = f"{where}: " if where else ""
        if len(self.problems) == 1:
            message = prefix + self.problems[0]
        else:
            message = prefix + f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.problems, self.where))


class DataFileError(BrainresError):
    """A file is missing, unreadable, truncated or has the wrong content."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # errors raised in a Dask worker must arrive whole
        return (type(self), (self.path, self.problem))


class ChecksumError(DataFileError):
    """A file's SHA-256 differs from the registered one."""

    def __init__(self, path, expected: str, actual: str):
        self.expected = expected
        self.actual = actual
        super().__init__(path, f"SHA-256 mismatch: expected {expected}, got {actual}")

    def __reduce__(self):
        return (type(self), (self.path, self.expected, self.actual))


class SchemaError(BrainresError, ValueError):
    """A dataset violates the brainres data model; lists every violation."""

    def __init__(self, kind: str, violations: list[str], source: str | None = None):
        self.kind = kind
        self.violations = list(violations)
        self.source = source
        where = f" ({source})" if source else ""
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"not a valid '{kind}' dataset{where}:\n{lines}")

    def __reduce__(self):
        return (type(self), (self.kind, self.violations, self.source))


class UnknownDatasetError(BrainresError, KeyError):
    """A dataset id that is not registered."""

    def __str__(self):  # KeyError would otherwise quote the message
        return str(self.args[0])


class StimulusMismatchError(BrainresError, ValueError):
    """Two datasets that must cover the same stimuli do not."""

    def __init__(self, missing_left: list[str], missing_right: list[str], left: str, right: str):
        self.missing_left = list(missing_left)
        self.missing_right = list(missing_right)
        self.left, self.right = left, right
        parts = []
        if missing_left:
            parts.append(f"{len(missing_left)} stimuli in {right} but not in {left}: {_preview(missing_left)}")
        if missing_right:
            parts.append(f"{len(missing_right)} stimuli in {left} but not in {right}: {_preview(missing_right)}")
        super().__init__("stimulus sets differ; " + "; ".join(parts))

    def __reduce__(self):
        return (type(self), (self.missing_left, self.missing_right, self.left, self.right))


def _preview(items: list[str], n: int = 20) -> str:
    shown = ", ".join(map(str, items[:n]))
    return shown + (f", ... ({len(items) - n} more)" if len(items) > n else "")
