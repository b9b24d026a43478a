"""The project's error types: every user-facing failure is one of these (or a library
error the CLI knows), so each command can print one line naming the file and the problem.

Layer 1 (like config and utils): any module may raise them.
"""

from __future__ import annotations


class AnchorUDFError(Exception):
    """Base of every anchorudf error; the message names the file (or key) and the problem."""


class IntegrityError(AnchorUDFError):
    """A file the pipeline reads is damaged, stale or does not match what was recorded
    (checksum, index range, provenance hash)."""


class CheckpointError(IntegrityError):
    """A model/checkpoint folder is damaged, incomplete or does not fit the architecture."""


class OutputError(AnchorUDFError):
    """An output folder cannot be created or written (checked before a command does any work)."""
