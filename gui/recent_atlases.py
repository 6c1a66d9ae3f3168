"""Atlas folders the app built, remembered across restarts (QSettings), newest last.

The Activations panel offers them to ``core.jobs.atlas.adopt_atlases`` for a model it has not
seen in this run, so an atlas built yesterday shows its crops again today.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

KEY = "atlas/folders"
MOST = 20
"""How many folders are kept: each is read (a small JSON) when a model is first looked up."""


def remembered() -> list[str]:
    """The remembered folders, oldest first."""
    value = QSettings().value(KEY) or []
    return [str(v) for v in ([value] if isinstance(value, str) else value)]


def remember(folder: str | Path) -> None:
    """Add ``folder`` as the newest (once), dropping the oldest beyond :data:`MOST`."""
    folder = str(folder)
    folders = [f for f in remembered() if f != folder] + [folder]
    QSettings().setValue(KEY, folders[-MOST:])
