"""BaseDock: a QDockWidget with a header row, Save figure… and Copy to clipboard.

Subclasses set ``TITLE`` and ``OBJECT_NAME``, build their widgets into ``self.body`` (a
QVBoxLayout), may add controls to ``self.header`` (left of the Save / Copy buttons), listen to
``self.state`` and override :meth:`make_panels` to return what a saved figure shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QModelIndex, QSize, Qt
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QScrollArea,
    QSizePolicy,
    QTableView,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from hookscope.core.errors import HookScopeError
from hookscope.gui import figures, filedialogs
from hookscope.gui.qtutil import qimage_to_rgb
from hookscope.gui.widgets.flow import FlowLayout

LAYOUT_VERSION = 3
"""Version of the dock layout saved in settings and sessions (3: one panel per place)."""

SIDE_HINT_WIDTH = 4000
"""Width hint of a dock that keeps its width (see ``BaseDock.set_keeps_width``)."""

Panel = figures.Panel
"""A figure panel: title, uint8 RGB (H, W, 3), optional colour bar; a ``(title, rgb)`` tuple too."""


class _ContentLayout(QVBoxLayout):
    """A panel's column of rows, telling its scroll area the least height a width needs.

    For content with word-wrapped labels a scroll area asks ``heightForWidth``, which a box
    layout answers with the preferred heights of all rows: the Image panel scrolled (its
    Model default button below the fold) with room to spare at 1000×700.
    """

    _asking = False

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt name)
        if self._asking:  # minimumHeightForWidth asks heightForWidth first: Qt's own answer
            return super().heightForWidth(width)
        self._asking = True
        try:
            least = self.minimumHeightForWidth(width)
        finally:
            self._asking = False
        return least if least >= 0 else super().heightForWidth(width)


class FitWidthScroll(QScrollArea):
    """A scroll area as wide as its content's minimum: the panel scrolls only up and down.

    QMainWindow squeezes a dock to the minimum it reports; a plain scroll area reports ~70 px,
    so a narrow column cut its panel's controls behind a sideways scroll bar. Here the dock
    keeps room for every control (rows wrap to keep that minimum small) and the plots or the
    window give way instead.
    """

    def setWidget(self, widget: QWidget) -> None:  # noqa: N802 (Qt name)
        super().setWidget(widget)
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt name)
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the content's minimum may have changed
        return super().eventFilter(obj, event)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt name)
        hint = super().minimumSizeHint()
        content = self.widget()
        if content is None:
            return hint
        bar = self.verticalScrollBar().sizeHint().width()
        frame = 2 * self.frameWidth()
        need = content.minimumSizeHint().width() + bar + frame
        return QSize(max(hint.width(), need), hint.height())


class BaseDock(QDockWidget):
    """Common dock plumbing.

    Attributes:
        state: The :class:`~gui.state.AppState`.
        header: FlowLayout (a wrapping row) for the dock's own controls (buttons to its right).
        body: QVBoxLayout for the dock's content.
        save_action, copy_action: The dock's figure actions.
    """

    TITLE = "Dock"
    OBJECT_NAME = "dock"
    stacked_away = False
    """True while the panel waits hidden in its place for the Panels bar (not closed)."""

    def __init__(self, state, parent: QWidget | None = None):
        super().__init__(self.TITLE, parent)
        self.setObjectName(self.OBJECT_NAME)
        self.state = state
        self.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        root = QWidget(self)
        outer = _ContentLayout(root)
        outer.setContentsMargins(4, 2, 4, 4)
        outer.setSpacing(3)
        # A row that wraps: in a narrow column the controls take two lines instead of
        # widening the panel past the column (it scrolled sideways, Copy out of reach).
        self.header = FlowLayout(spacing=4)
        outer.addLayout(self.header)
        self.body = QVBoxLayout()
        self.body.setSpacing(3)
        outer.addLayout(self.body, 1)
        self.content = root
        # Below its content's minimum a dock scrolls instead of painting over its neighbours:
        # QMainWindow squeezes docks under their minimum size when the window is small.
        self.scroll = FitWidthScroll(self)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(root)
        self.setWidget(self.scroll)

        self.save_action = QAction("Save…", self)
        self.save_action.setToolTip(f"Save the {self.TITLE} figure as PNG or SVG")
        self.save_action.triggered.connect(lambda: self.save_figure())
        self.copy_action = QAction("Copy", self)
        self.copy_action.setToolTip(f"Copy the {self.TITLE} figure to the clipboard")
        self.copy_action.setShortcut(QKeySequence.StandardKey.Copy)
        self.copy_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.copy_action.triggered.connect(self.copy_to_clipboard)
        self.addAction(self.copy_action)
        self._header_tail = QHBoxLayout()
        self._header_tail.setSpacing(2)
        for action in (self.save_action, self.copy_action):
            btn = QToolButton(root)
            btn.setDefaultAction(action)
            btn.setAutoRaise(True)
            self._header_tail.addWidget(btn)
        self.header.addStretch(1)
        self.header.addLayout(self._header_tail)

    def raise_(self) -> None:
        """Bring the panel to the front; a panel waiting in its place takes the place back."""
        window = self.parentWidget()
        if self.stacked_away and hasattr(window, "show_panel"):
            window.show_panel(self)
        else:
            super().raise_()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.stacked_away = False  # closed by the user (the X), not waiting for the Panels bar
        super().closeEvent(event)

    # -- width in the window ---------------------------------------------------------------
    def set_keeps_width(self, on: bool) -> None:
        """Keep this dock's width when the window grows (side columns); plots take the space.

        A "Maximum" width policy makes Qt's dock layout give extra width to the other docks;
        the huge width hint keeps the user free to drag the column wider (Qt caps a Maximum
        policy at the hint).
        """
        self._keeps_width = on
        horizontal = QSizePolicy.Policy.Maximum if on else QSizePolicy.Policy.Preferred
        self.setSizePolicy(horizontal, QSizePolicy.Policy.Preferred)

    @property
    def keeps_width(self) -> bool:
        """True for a side column (see :meth:`set_keeps_width`)."""
        return getattr(self, "_keeps_width", False)

    def sizeHint(self) -> QSize:  # noqa: N802
        hint = super().sizeHint()
        if self.keeps_width:
            hint.setWidth(SIDE_HINT_WIDTH)
        return hint

    # -- redraw after a run -------------------------------------------------------------------
    def on_result(self, redraw) -> None:
        """Call ``redraw()`` after every run while the dock is on screen.

        A dock hidden behind another tab only marks itself stale and catches up when it is
        shown (or before its figure is saved): a dozen docks need not all redraw per run.
        """
        self._redraw_fn, self._redraw_pending, self._shown = redraw, False, True
        self.state.resultChanged.connect(self._on_any_result)
        self.visibilityChanged.connect(self._on_visibility)

    def _on_visibility(self, shown: bool) -> None:
        # isVisible() stays True behind a tab; this signal is what tracks the selected tab.
        self._shown = shown
        if shown:
            self.flush()

    def _on_any_result(self, _snapshot) -> None:
        self._redraw_pending = True
        # Hidden (waiting in its place) or behind another tab: catch up when shown.
        if self._shown and self.isVisible():
            self.flush()

    def flush(self) -> None:
        """Bring a deferred redraw up to date."""
        if getattr(self, "_redraw_pending", False):
            self._redraw_pending = False
            self._redraw_fn()

    def add_header_widget(self, widget: QWidget) -> None:
        """Put a control in the header, left of the Save / Copy buttons."""
        self.header.insertWidget(self.header.count() - 2, widget)

    # -- figures ----------------------------------------------------------------------------
    def figure_panels(self) -> list[Panel]:
        """The dock's current figure as panels (after any deferred redraw)."""
        self.flush()
        return self.make_panels()

    def export_arrays(self) -> dict[str, np.ndarray]:
        """Raw data behind the figure, for File ▸ Export all (after any deferred redraw)."""
        self.flush()
        return self.make_arrays()

    def make_panels(self) -> list[Panel]:
        """Override: the figure as panels; the default grabs the content widget."""
        pix = self.content.grab()
        return [(self.TITLE, qimage_to_rgb(pix.toImage()))]

    def make_arrays(self) -> dict[str, np.ndarray]:
        """Override: the raw arrays behind the figure (none by default)."""
        return {}

    def has_figure(self) -> bool:
        """True when the dock draws a figure of its own (not only a grab of its widgets)."""
        return type(self).make_panels is not BaseDock.make_panels

    def export_texts(self) -> list[str]:
        """The text of every read-only text pane (Hook code's code), for File ▸ Export all."""
        from PySide6.QtWidgets import QPlainTextEdit, QTextEdit

        panes = [*self.content.findChildren(QPlainTextEdit), *self.content.findChildren(QTextEdit)]
        return [p.toPlainText() for p in panes if p.isReadOnly() and p.toPlainText().strip()]

    def export_tables(self) -> list[tuple[list[str], list[list[str]]]]:
        """Every table or tree of the dock as (header, rows) of the texts it shows.

        For File ▸ Export all: a table's content as CSV, not a picture of a hidden widget.
        Rows of a tree come depth-first, each name indented by two spaces per level.
        """
        self.flush()
        tables = []
        views = [*self.content.findChildren(QTableView), *self.content.findChildren(QTreeView)]
        for view in views:  # (not a combo box's popup list, nor a header)
            model = view.model()
            if model is None:
                continue
            try:
                cols = model.columnCount(QModelIndex())
            except TypeError:  # a list model keeps columnCount private: one column
                cols = 1
            if not cols or not model.rowCount(QModelIndex()):
                continue
            header = [
                str(model.headerData(c, Qt.Orientation.Horizontal) or f"column {c + 1}")
                for c in range(cols)
            ]
            tables.append((header, _model_rows(model, cols)))
        return tables

    def settings(self) -> dict:
        """Choices behind the figure, for File ▸ Export all (none by default)."""
        return {}

    def figure_name(self) -> str:
        """File stem for saved figures."""
        return self.OBJECT_NAME.replace("Dock", "").replace(" ", "_").lower() or "figure"

    def save_figure(self, path: str | Path | None = None) -> Path | None:
        """Save :meth:`figure_panels` as PNG or SVG (asks for a path when none is given)."""
        if path is None:
            path = filedialogs.save_file(
                self,
                f"Save {self.TITLE} figure",
                f"{self.figure_name()}.png",
                "PNG image (*.png);;SVG image (*.svg)",
            )
            if not path:
                return None
        path = Path(path)
        if path.suffix.lower() not in (".png", ".svg"):
            path = path.with_suffix(".png")
        try:
            save_panels(self.figure_panels(), path, title=self.TITLE)
        except HookScopeError as exc:
            self.state.errorRaised.emit(str(exc))
            return None
        except OSError as exc:
            self.state.errorRaised.emit(f"Could not save {path.name}: {exc.strerror or exc}.")
            return None
        self.state.statusMessage.emit(f"Saved {path}")
        return path

    def copy_to_clipboard(self) -> None:
        """Copy the figure as an image."""
        panels = self.figure_panels()
        if not panels:
            return
        image = figures.render_figure(figure_items(panels), title=self.TITLE)  # as Save writes
        QGuiApplication.clipboard().setImage(image)
        self.state.statusMessage.emit(f"{self.TITLE} figure copied to the clipboard.")


def figure_items(panels: list[Panel]) -> list:
    """Dock panels (or ``(title, rgb)`` tuples) as :class:`gui.figures.Panel` items."""
    return [figures.Panel(p[0], _rgb(p[1]), *p[2:]) for p in panels]


def save_panels(panels: list[Panel], path: Path, title: str = "") -> None:
    """Save panels with the shared figure renderer (``gui.figures``, same look as the CLI).

    Raises:
        HookScopeError: When the file cannot be written.
    """
    figures.save_figure(path, figure_items(panels), title=title or None)


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3])


def _model_rows(model, cols: int, parent=None, depth: int = 0) -> list[list[str]]:
    """The display texts of ``model``'s rows under ``parent`` (depth-first), as strings."""
    parent = parent if parent is not None else QModelIndex()
    rows = []
    for r in range(model.rowCount(parent)):
        cells = [model.data(model.index(r, c, parent)) for c in range(cols)]
        row = ["" if v is None else str(v) for v in cells]
        row[0] = "  " * depth + row[0]
        rows.append(row)
        first = model.index(r, 0, parent)
        try:
            nested = model.hasChildren(first)
        except TypeError:  # list and table models keep hasChildren private: flat
            nested = False
        if nested:
            rows += _model_rows(model, cols, first, depth + 1)
    return rows
