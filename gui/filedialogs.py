"""File dialogs that open in the last folder the user picked from (not the current directory).

One folder is remembered in QSettings for every dialog of the app: opening an image from
``~/photos`` makes the next Save, Export or Open session start in ``~/photos`` too.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

KEY = "dialogs/last_dir"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff);;All files (*)"
"""The file filter of every dialog that opens an image (docks share it from here, not a dock)."""


def last_dir() -> str:
    """The folder of the last file picked in a dialog, or the home folder."""
    folder = QSettings().value(KEY)
    if isinstance(folder, str) and Path(folder).is_dir():
        return folder
    return str(Path.home())


def remember(path: str | Path) -> None:
    """Remember the folder of ``path`` (or ``path`` itself when it is a folder)."""
    p = Path(path)
    QSettings().setValue(KEY, str(p if p.is_dir() else p.parent))


def open_file(parent: QWidget | None, caption: str, filter: str = "") -> str:
    """Ask for an existing file, starting in :func:`last_dir`; "" when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, caption, last_dir(), filter)
    if path:
        remember(path)
    return path


def save_file(parent: QWidget | None, caption: str, name: str, filter: str = "") -> str:
    """Ask where to save ``name`` (a default file name), starting in :func:`last_dir`."""
    path, _ = QFileDialog.getSaveFileName(parent, caption, str(Path(last_dir()) / name), filter)
    if path:
        remember(path)
    return path


def new_or_existing_dir(parent: QWidget | None, caption: str, name: str) -> str:
    """Ask for a folder that may not exist yet (the caller creates it); "" when cancelled.

    Qt's folder chooser refuses a folder that does not exist, so this is a save dialog whose
    file name is the folder to create (or an existing one to fill).
    """
    path, _ = QFileDialog.getSaveFileName(
        parent,
        caption,
        str(Path(last_dir()) / name),
        "Folder (*)",
        options=QFileDialog.Option.DontConfirmOverwrite,
    )
    if path:
        QSettings().setValue(KEY, str(Path(path).parent))
    return path
