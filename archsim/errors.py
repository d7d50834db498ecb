"""Error types. Every user-facing error names the dotted path of the bad field.

The CLI turns :class:`ArchsimError` (and its subclasses) into a message on
stderr and exit status 2; nothing else in the package decides exit codes.
"""
from __future__ import annotations

import difflib
from typing import Iterable, Sequence


class ArchsimError(Exception):
    """Base class of every error that is the user's input, not a bug."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class ConfigError(ArchsimError):
    """One or more invalid fields in a configuration; all are reported at once."""

    def __init__(self, problems: Sequence[tuple[str, str]] | str, path: str | None = None,
                 source: str | None = None):
        if isinstance(problems, str):
            problems = [(path or "", problems)]
        self.problems = list(problems)
        self.source = source
        lines = []
        for p, msg in self.problems:
            lines.append(f"  {p}: {msg}" if p else f"  {msg}")
        head = f"invalid configuration{f' in {source}' if source else ''}"
        if len(self.problems) == 1:
            p, msg = self.problems[0]
            text = f"{head}: {p + ': ' if p else ''}{msg}"
        else:
            text = head + f" ({len(self.problems)} problems):\n" + "\n".join(lines)
        ArchsimError.__init__(self, text)
        self.path = self.problems[0][0] if self.problems else None


class WorkloadError(ConfigError):
    """Invalid workload description."""


class LoweringError(ArchsimError):
    """The workload cannot be mapped onto the hardware (e.g. a tile does not fit)."""


class InputFileError(ArchsimError):
    """A missing or unreadable input file, or malformed file content."""


class OutOfRangeError(ArchsimError):
    """The inputs drive the simulation past what it can count or hold: a cycle count beyond 64
    bits, a non-finite energy (an absurd rate, size or price in the configuration), or more
    instructions than this machine's memory can simulate."""


class OutputError(ArchsimError):
    """An output file cannot be written (missing folder, no permission, not a regular path)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
