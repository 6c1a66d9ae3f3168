"""The main window: docks, menus, status bar, and the saved layout."""

from __future__ import annotations

import importlib
import json
import struct
import sys
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QSettings, QSignalBlocker, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTabBar,
    QToolBar,
    QToolButton,
    QWidget,
)

from hookscope.gui import filedialogs
from hookscope.gui.docks.base import LAYOUT_VERSION, BaseDock, save_panels
from hookscope.gui.docks.image import IMAGE_FILTER, ImageDock
from hookscope.gui.docks.layer_stats import LayerStatsDock
from hookscope.gui.docks.model_tree import ModelTreeDock
from hookscope.gui.docks.predictions import PredictionsDock
from hookscope.gui.widgets.labels import WrapLabel

ANALYSIS_DOCKS = (
    ("hookscope.gui.docks.activations", "ActivationsDock"),
    ("hookscope.gui.docks.gradients", "GradientsDock"),
    ("hookscope.gui.docks.cam", "CamDock"),
    ("hookscope.gui.docks.attribution", "AttributionDock"),
)
"""Centre docks, tabbed, in this order; each is used when its module exists."""

EXPERIMENT_DOCKS = (
    ("hookscope.gui.docks.edits", "EditsDock"),
    ("hookscope.gui.docks.image_lab", "ImageLabDock"),
    ("hookscope.gui.docks.importance", "ImportanceDock"),
    ("hookscope.gui.docks.compare", "CompareDock"),
    ("hookscope.gui.docks.sanity", "SanityDock"),
    ("hookscope.gui.docks.trust", "TrustDock"),
    ("hookscope.gui.docks.dataset", "DatasetDock"),
    ("hookscope.gui.docks.hook_code", "HookCodeDock"),
    ("hookscope.gui.docks.training", "TrainingDock"),
)
"""Experiment docks: Edits with Predictions, Image lab with Image, the rest tabbed centre."""
EXPERIMENT_PLACES = {"EditsDock": "predictions", "ImageLabDock": "image"}

SIDE_WIDTHS = (300, 340)
"""Widths of the Model column and the Image / Predictions column at 1440 px; plots get the rest."""
DEFAULT_SIZE = (1440, 900)

HEAD = struct.Struct(">iiBiiii")
"""Start of a saveState: marker, version, dock marker, area count, first area and its size."""

RECENT_MAX = 8
MODEL_EXAMPLES = (
    "demo",
    "demo:clean",
    "demo:vit",
    "demo:vit-clean",
    "torchvision:resnet18",
    "torchvision:resnet50",
)


def analysis_dock_classes(entries=ANALYSIS_DOCKS) -> list[type[BaseDock]]:
    """The analysis (or other ``entries``) dock classes that are present in this build."""
    found = []
    for module, name in entries:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the dock exists but something it imports does not
                _warn(module, exc)
        except Exception as exc:  # a broken dock must not take the whole app down
            _warn(module, exc)
    return found


def _warn(module: str, exc: Exception) -> None:
    print(f"hookscope: skipping {module}: {type(exc).__name__}: {exc}", file=sys.stderr)


def settings() -> QSettings:
    """The app's QSettings (organisation / application names come from QApplication)."""
    return QSettings()


def layout_width(state: QByteArray) -> int | None:
    """Width of the dock area a ``saveState`` was taken at, when all its docks share one area.

    Qt writes a marker (0xff) and the version, then the dock areas: a marker (0xfd), their
    count and, per area, its position and size. With several areas (docks the user moved to
    other edges) the width is not written as one number: None.
    """
    head = bytes(state)[: HEAD.size]
    if len(head) < HEAD.size:
        return None
    marker, _version, area_marker, areas, _area, width, _height = HEAD.unpack(head)
    ok = (marker, area_marker, areas) == (0xFF, 0xFD, 1)
    return width if ok and width > 0 else None


class MainWindow(QMainWindow):
    """HookScope's window. Docks talk only to ``state``.

    Args:
        state: The :class:`~gui.state.AppState`.
        restore: Restore geometry and dock layout from QSettings.
    """

    def __init__(self, state, *, restore: bool = True):
        super().__init__()
        self.state = state
        self.setWindowTitle("HookScope")
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
            | QMainWindow.DockOption.AllowNestedDocks
        )
        self.setDocumentMode(True)
        self.tree_dock = ModelTreeDock(state, self)
        self.image_dock = ImageDock(state, self)
        self.predictions_dock = PredictionsDock(state, self)
        self.analysis_docks: list[BaseDock] = [cls(state, self) for cls in analysis_dock_classes()]
        self.stats_dock = LayerStatsDock(state, self)
        self.experiment_docks: list[BaseDock] = [
            cls(state, self) for cls in analysis_dock_classes(EXPERIMENT_DOCKS)
        ]
        self.docks: list[BaseDock] = [
            self.tree_dock,
            *self.analysis_docks,
            self.stats_dock,
            self.image_dock,
            self.predictions_dock,
            *self.experiment_docks,
        ]
        self._current_dock: BaseDock | None = None
        self._restored_width: int | None = None  # width of a layout restored while hidden
        self._side_exact: dict[str, float] = {}  # side column widths between resize steps
        self._seen: dict[str, int] = {}  # dock widths before the window's latest resize
        self._seen_window: int | None = None  # the window width they were seen at
        self._make_panel_bar()
        self._default_layout()
        self._default_state = self.saveState(LAYOUT_VERSION)
        self._make_status_bar()
        self._make_menus()
        self._connect_state()
        self.resize(*self._start_size())
        if restore:
            self.restore_layout()
        QApplication.instance().focusChanged.connect(self._on_focus)
        for dock in self.docks:
            dock.dockLocationChanged.connect(lambda *_: QTimer.singleShot(0, self._tidy_tabs))
            dock.installEventFilter(self)

    # -- layout -------------------------------------------------------------------------------
    def _start_size(self) -> tuple[int, int]:
        """1440×900, or the screen's free area when it is smaller."""
        w, h = DEFAULT_SIZE
        screen = self.screen()
        # Offscreen (tests, --screenshot, the README's shots) has a nominal 800×600 screen.
        if screen is not None and QApplication.platformName() != "offscreen":
            free = screen.availableGeometry()
            w, h = min(w, free.width()), min(h, free.height())
        return w, h

    def _fit_screen(self) -> None:
        """Shrink a size saved on a bigger screen, which would put panels off this one."""
        screen = self.screen()
        if screen is None or QApplication.platformName() == "offscreen":
            return
        free = screen.availableGeometry()
        if self.width() > free.width() or self.height() > free.height():
            self.resize(min(self.width(), free.width()), min(self.height(), free.height()))
            self.move(free.topLeft())

    def _default_layout(self) -> None:
        """Model tree left, analysis and experiment panels in the centre, Image over Predictions.

        All three columns share one dock area, where only the centre is "expanding": the side
        columns keep their width when the window grows and the plots get the space (across two
        areas, Qt gives every extra pixel to the left one: the Model tree).
        """
        for dock in self.docks:
            dock.setVisible(True)
            dock.setFloating(False)
        centre = [*self.analysis_docks, self.stats_dock]
        for dock in self.panel_groups()[0][1] + sum(
            (docks for _, docks in self.panel_groups()[3:]), []
        ):
            dock.set_keeps_width(True)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.tree_dock)
        self.splitDockWidget(self.tree_dock, centre[0], Qt.Orientation.Horizontal)
        self.splitDockWidget(centre[0], self.image_dock, Qt.Orientation.Horizontal)
        self.splitDockWidget(self.image_dock, self.predictions_dock, Qt.Orientation.Vertical)
        for dock in centre[1:]:
            self.tabifyDockWidget(centre[0], dock)
        places = {"image": self.image_dock, "predictions": self.predictions_dock}
        for dock in self.experiment_docks:
            host = places.get(EXPERIMENT_PLACES.get(dock.objectName(), ""), centre[0])
            self.tabifyDockWidget(host, dock)
        # One panel per place; the others wait hidden in their group (no tab strip to overflow
        # and cut titles) and the Panels bar brings any of them to the front.
        fronts = {centre[0], self.image_dock, self.predictions_dock, self.tree_dock}
        for dock in self.docks:
            if dock not in fronts:
                dock.stacked_away = True
                dock.hide()
        tree_w, image_w = self._side_widths(self._start_size()[0])
        self.resizeDocks(
            [self.tree_dock, centre[0], self.image_dock],
            [tree_w, 720, image_w],
            Qt.Orientation.Horizontal,
        )
        self.resizeDocks(
            [self.image_dock, self.predictions_dock], [500, 350], Qt.Orientation.Vertical
        )
        self._tidy_tabs()

    def _side_widths(self, width: int) -> tuple[int, int]:
        """Starting widths of the Model column and the Image / Predictions column at ``width``."""
        # Narrow screens get narrower side columns, so the plots keep about half the width.
        scale = min(1.0, width / DEFAULT_SIZE[0])
        tree_w, image_w = (round(w * scale) for w in SIDE_WIDTHS)
        # Wide enough for the Image panel's buttons on one line when the screen allows (else
        # they wrap); below 1280 px the plots need the width more.
        if width >= 1280:
            need = self.image_dock.content.sizeHint().width() + 16
            image_w = max(image_w, min(need, int(width * 0.3)))
        return tree_w, image_w

    def _fit_side_columns(self, ratio: float, before: dict[str, int] | None = None) -> None:
        """Fit the side columns to a window ``ratio`` times as wide as their layout's.

        Qt gives and takes width in the plots first (the expanding centre) and squeezes a
        side column only at its minimum: a layout saved at 1920 px left Activations 193 px
        wide at 1000, and after a shrink the Image column stayed 236 px wide at 1920. Here a
        shrink scales each side column by ``ratio`` but not below its starting width at this
        size (``ratio`` 0: the starting widths), and a grow scales a column narrower than its
        starting width by ``ratio``, up to that width (the same for a layout restored from a
        smaller screen). A shrink never widens a column, a grow never narrows one: a column
        the user dragged keeps its share. ``before``: the widths before Qt's own relayout.
        """
        tree_w, image_w = self._side_widths(self.width())
        docks, sizes = [], []
        for dock in self._side_docks():
            name, now = dock.objectName(), dock.width()
            prior = (before or {}).get(name, now)
            # The exact width of an earlier step, unless the user dragged the column since:
            # rounding each step of a window drag would otherwise never shrink it.
            exact = self._side_exact.get(name, prior)
            exact = (exact if abs(exact - prior) < 1 else prior) * ratio
            start = tree_w if dock is self.tree_dock else image_w
            if ratio < 1:
                limit = min(prior, max(exact, start))
            else:
                limit = max(prior, min(exact, start))
            self._side_exact[name] = limit
            if round(limit) != now:
                docks.append(dock)
                sizes.append(round(limit))
        if docks:
            self.resizeDocks(docks, sizes, Qt.Orientation.Horizontal)

    def _side_docks(self) -> list[BaseDock]:
        """Docks on screen in a side column (the Model column, the Image / Predictions one)."""
        sides = {Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea}
        return [
            d
            for d in self.docks
            if d.keeps_width
            and d.isVisible()
            and not d.isFloating()
            and self.dockWidgetArea(d) in sides
        ]

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt name)
        """Note a dock's width while the window keeps its own (a drag, a panel shown).

        Qt relays the docks out before ``resizeEvent`` runs, so their widths before a
        window resize are the ones noted here.
        """
        if event.type() == QEvent.Type.Resize and self.width() == self._seen_window:
            self._seen[obj.objectName()] = event.size().width()
        return super().eventFilter(obj, event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        """Side columns follow the window's width (Qt would give and take only the plots')."""
        super().resizeEvent(event)
        old, new = event.oldSize().width(), event.size().width()
        if self.isVisible() and 0 < old and 0 < new != old:
            self._fit_side_columns(new / old, self._seen)
        self._seen_window = new

    def showEvent(self, event) -> None:  # noqa: N802
        """Fit a layout restored before the window was shown (and laid out) to its width."""
        super().showEvent(event)
        if self._restored_width:
            self._fit_restored(self._restored_width)

    def _fit_restored(self, saved: int) -> None:
        """Fit side columns restored from a layout ``saved`` px wide to this window's width."""
        self._restored_width = None
        now = layout_width(self.saveState(LAYOUT_VERSION))
        if now and now != saved:
            self._fit_side_columns(now / saved)

    def _tidy_tabs(self) -> None:
        """Whole tab titles with scroll arrows for docks the user tabs together by hand.

        Qt makes a new tab bar (eliding: "Activ…") whenever docks are regrouped or a state is
        restored, so this runs after every restore and every dock move.
        """
        for bar in self.findChildren(QTabBar):
            if bar.elideMode() != Qt.TextElideMode.ElideNone:
                bar.setElideMode(Qt.TextElideMode.ElideNone)
            if not bar.usesScrollButtons():
                bar.setUsesScrollButtons(True)
        self._order_focus()

    def _order_focus(self) -> None:
        """A table's own Tab moves between its cells, so Tab never left it: arrows do that."""
        for view in self.findChildren(QAbstractItemView):
            view.setTabKeyNavigation(False)

    def _dock_of(self, widget: QWidget | None) -> BaseDock | None:
        return next((d for d in self.docks if d is widget or d.isAncestorOf(widget)), None)

    def _tab_stop(self, dock: BaseDock, forward: bool) -> QWidget | None:
        """The first (or last) widget of ``dock`` that Tab may stop at."""
        stops, widget = [], dock.nextInFocusChain()
        while widget is not dock and len(stops) < 10_000:
            focusable = widget.focusPolicy() & Qt.FocusPolicy.TabFocus
            if dock.isAncestorOf(widget) and focusable and widget.isVisible():
                if widget.isEnabled():
                    stops.append(widget)
            widget = widget.nextInFocusChain()
        return (stops[0] if forward else stops[-1]) if stops else None

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: A002, N802 (Qt's signature)
        """Tab walks the panels as they stand: Model, the centre, Image, Predictions.

        Qt appends a dock to the focus chain whenever it is regrouped, which put the centre
        panel after the right column; the panels' own order decides here instead.
        """
        before = self._dock_of(QApplication.focusWidget())
        moved = super().focusNextPrevChild(next)
        after = self._dock_of(QApplication.focusWidget())
        if before is None or after is before:
            return moved
        shown = [d for _, group in self.panel_groups() for d in group if d.isVisible()]
        if before not in shown or len(shown) < 2:
            return moved
        step = 1 if next else -1
        index = shown.index(before)
        for k in range(1, len(shown)):
            target = self._tab_stop(shown[(index + step * k) % len(shown)], next)
            if target is not None:
                target.setFocus(
                    Qt.FocusReason.TabFocusReason if next else Qt.FocusReason.BacktabFocusReason
                )
                return True
        return moved

    def restoreState(self, state, version: int = 0) -> bool:  # noqa: N802
        """QMainWindow.restoreState; hidden panels then wait in their place, titles stay whole."""
        ok = super().restoreState(state, version)
        # Side columns saved on a wider screen must not squeeze the plots here (nor, saved on
        # a smaller one, stay too narrow for their buttons).
        self._restored_width = layout_width(state) if ok else None
        if self.isVisible() and self._restored_width:
            self._fit_restored(self._restored_width)
        self._mark_stacked()
        self._tidy_tabs()
        QTimer.singleShot(0, self._tidy_tabs)
        return ok

    # -- panel bar ----------------------------------------------------------------------------
    def panel_groups(self) -> list[tuple[str, list[BaseDock]]]:
        """Every dock in one group: the panel bar lists them in this order."""
        placed = {"image": [], "predictions": []}
        centre = []
        for dock in self.experiment_docks:
            place = EXPERIMENT_PLACES.get(dock.objectName())
            (placed[place] if place in placed else centre).append(dock)
        return [
            ("Model", [self.tree_dock]),
            ("Analysis", [*self.analysis_docks, self.stats_dock]),
            ("Experiments", centre),
            ("Input", [self.image_dock, *placed["image"]]),
            ("Output", [self.predictions_dock, *placed["predictions"]]),
        ]

    def _make_panel_bar(self) -> None:
        """A vertical bar with one button per panel: any panel is one click away at any size.

        A dozen panels overflow any tab strip (titles cut, panels behind scroll arrows); here
        each place shows one panel and a button puts its panel there (also after a close).
        """
        bar = self.panel_bar = QToolBar("Panels", self)
        bar.setObjectName("PanelBar")
        bar.setOrientation(Qt.Orientation.Vertical)
        bar.setMovable(False)
        bar.setFloatable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        bar.setStyleSheet("QToolButton { padding: 1px 3px; text-align: left; }")
        self.addToolBar(Qt.ToolBarArea.LeftToolBarArea, bar)
        self.panel_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        group.setExclusive(False)
        for i, (_name, docks) in enumerate(self.panel_groups()):
            if not docks:
                continue
            if i:
                bar.addSeparator()
            for dock in docks:
                action = QAction(_two_lines(dock.TITLE), self, checkable=True)
                action.setToolTip(f"Show the {dock.TITLE} panel")
                action.triggered.connect(lambda _=False, d=dock: self.show_panel(d))
                dock.visibilityChanged.connect(lambda shown, a=action: _set_checked(a, shown))
                group.addAction(action)
                bar.addAction(action)
                self.panel_actions[dock.objectName()] = action

    def open_training_run(self, path: str | None = None) -> None:
        """Show the Training panel on a run folder (asks for one when ``path`` is None)."""
        dock = next(d for d in self.experiment_docks if d.objectName() == "TrainingDock")
        self.show_panel(dock)
        if path:
            dock.open_run(path)
        else:
            dock.choose_run()

    def show_panel(self, dock: BaseDock) -> None:
        """Show ``dock`` in its place, hiding the panel that held it (one click, no tabs).

        Qt keeps a hidden dock's place, so the panels of one place take turns in it; docks the
        user tabbed together by hand stay tabbed except the one this replaces.
        """
        dock.stacked_away = False
        if not dock.isVisible():
            dock.show()
        for other in self.tabifiedDockWidgets(dock):
            if other.isVisible() and not other.isFloating():
                other.stacked_away = True
                other.hide()
        QDockWidget.raise_(dock)  # the plain raise: BaseDock.raise_ comes back here
        _set_checked(self.panel_actions.get(dock.objectName()), True)

    def _mark_stacked(self) -> None:
        """After a restore: every hidden dock waits in its place (none counts as closed)."""
        for dock in self.docks:
            dock.stacked_away = not dock.isVisible()

    def reset_layout(self) -> None:
        """Put every dock back where it starts."""
        if not self.restoreState(self._default_state, LAYOUT_VERSION):
            self._default_layout()
        self._fit_side_columns(0.0)  # the starting widths at this window's width
        self._tidy_tabs()

    def save_layout(self) -> None:
        s = settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(LAYOUT_VERSION))

    def restore_layout(self) -> bool:
        """Restore geometry and dock placement from QSettings; False when none was saved."""
        s = settings()
        geometry, state = s.value("window/geometry"), s.value("window/state")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
            self._fit_screen()
        if isinstance(state, QByteArray):
            restored = self.restoreState(state, LAYOUT_VERSION)
            self._tidy_tabs()
            return restored
        return False

    def closeEvent(self, event) -> None:  # noqa: N802
        self.save_layout()
        # Ends what it can; a job still running is left behind (the app then uses os._exit).
        self.state.worker.shutdown()
        super().closeEvent(event)

    # -- status bar ---------------------------------------------------------------------------
    def _make_status_bar(self) -> None:
        bar = self.statusBar()
        self.model_label = QLabel("No model", self)
        self.device_label = QLabel("", self)
        self.time_label = QLabel("", self)
        self.progress_label = QLabel("", self)
        self.progress_label.setVisible(False)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setMaximumWidth(180)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setVisible(False)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Cancel the running job (Esc)")
        self.cancel_button.clicked.connect(self.state.cancel)
        self.cancel_button.setVisible(False)
        # The message in a label that wraps, left of the rest: Qt draws a status message on
        # one line, cut at the first permanent widget (at 1280 px notes lost their ends).
        self.message_label = WrapLabel("", self)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # As wide as its text when there is room, but it never sets the window's least width.
        self.progress_label.setMinimumWidth(60)
        bar.messageChanged.connect(self._on_message)
        bar.addPermanentWidget(self.message_label, 1)
        for w in (self.model_label, self.device_label, self.time_label):
            bar.addPermanentWidget(w)
        bar.addPermanentWidget(self.progress_label)
        bar.addPermanentWidget(self.progress_bar)
        bar.addPermanentWidget(self.cancel_button)

    def _on_message(self, text: str) -> None:
        self.message_label.setText(text)
        self.message_label.setToolTip(text)

    def show_message(self, text: str, msecs: int = 8000) -> None:
        self.statusBar().showMessage(text, msecs)

    def _on_busy(self, busy: bool) -> None:
        # The bar appears with the first progress report, so short runs do not flash it.
        self.cancel_action.setEnabled(busy)
        if not busy:
            self._show_progress(False)

    def _show_progress(self, shown: bool) -> None:
        for w in (self.progress_label, self.progress_bar, self.cancel_button):
            w.setVisible(shown)

    def _on_progress(self, done: int, total: int, message: str) -> None:
        if total > 0:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(done)
        else:
            self.progress_bar.setRange(0, 0)  # busy indicator
        # Progress lives next to its bar so it never hides a message the user should read.
        self.progress_label.setText(message)
        self.progress_label.setToolTip(message)
        self._show_progress(True)

    def _on_model(self) -> None:
        lm = self.state.loaded
        if lm is None:
            return
        random = getattr(lm, "random_weights", False)
        label = f"{lm.name} (random weights)" if random else lm.name
        self.model_label.setText(f"Model: {label}")
        # Random weights predict confidently and mean nothing: say so wherever results show.
        self.model_label.setStyleSheet("color: #b00020; font-weight: bold;" if random else "")
        self.model_label.setToolTip(
            f"{lm.name} has random weights: its predictions and maps mean nothing. Load "
            f"pretrained weights (e.g. torchvision:{lm.name}:DEFAULT) or a weights file."
            if random
            else f"Weights: {getattr(lm, 'weights_source', 'model')}"
            + (f" ({lm.weights})" if lm.weights else "")
        )
        self.device_label.setText(f"Device: {lm.device}")
        self.setWindowTitle(f"HookScope — {label}")
        # A live module given no input size says how its image goes in (LoadedModel.note).
        note = getattr(lm, "note", "")
        if note:
            self.model_label.setToolTip(f"{self.model_label.toolTip()}\n{note}")
        self.show_message(
            f"Loaded {lm.name} with random weights: its predictions mean nothing."
            if random
            else f"Loaded {lm.name}." + (f" {note}" if note else ""),
            15000 if random or note else 5000,
        )
        args = self.state.model_args
        if args.get("spec") and not args.get("live"):  # a live module cannot be reopened
            self._push_recent("recent/models", json.dumps(args))

    def _on_result(self, snap) -> None:
        total = self.state.last_run_seconds or snap.seconds
        self.time_label.setText(
            f"Last run: {total * 1000:.0f} ms (probe {snap.probe_seconds * 1000:.0f} ms)"
        )
        for note in snap.notes:
            self.show_message(note, 12000)

    def _on_error(self, message: str) -> None:
        self.show_message(message, 15000)

    def _on_load_failed(self, message: str) -> None:
        # A failed open is worth a dialog: the user asked for that file and did not get it.
        QMessageBox.warning(self, "HookScope", message)

    # -- menus --------------------------------------------------------------------------------
    def _make_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        self.open_model_action = self._action(
            file_menu, "Open &model…", self.open_model_dialog, QKeySequence("Ctrl+O")
        )
        self.open_image_action = self._action(
            file_menu, "Open &image…", self.open_image_dialog, QKeySequence("Ctrl+I")
        )
        self.recent_models_menu = file_menu.addMenu("Recent models")
        self.recent_models_menu.aboutToShow.connect(self._fill_recent_models)
        self.recent_images_menu = file_menu.addMenu("Recent images")
        self.recent_images_menu.aboutToShow.connect(self._fill_recent_images)
        file_menu.addSeparator()
        from hookscope.gui import session_io

        self.open_session_action = self._action(
            file_menu,
            "Open sess&ion…",
            lambda: session_io.open_dialog(self),
            QKeySequence("Ctrl+Shift+O"),
        )
        # Ctrl+S is Export figure and Ctrl+Shift+S Export all (their keys since the start).
        self.save_session_action = self._action(
            file_menu,
            "Save sessio&n…",
            lambda: session_io.save_dialog(self),
            QKeySequence("Ctrl+Alt+S"),
        )
        self._action(file_menu, "Open &training run…", self.open_training_run)
        file_menu.addSeparator()
        self.export_action = self._action(
            file_menu, "&Export figure…", self.export_figure, QKeySequence("Ctrl+S")
        )
        self.export_all_action = self._action(
            file_menu, "Export &all…", self.export_all_dialog, QKeySequence("Ctrl+Shift+S")
        )
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence("Ctrl+Q"))

        view = self.view_menu = mb.addMenu("&View")
        for dock in self.docks:
            view.addAction(dock.toggleViewAction())
        view.addSeparator()
        self._action(view, "&Reset layout", self.reset_layout)

        run = mb.addMenu("&Run")
        self.run_action = self._action(run, "&Run", self.state.run, QKeySequence("Ctrl+R"))
        self.cancel_action = self._action(run, "&Cancel", self.state.cancel, QKeySequence("Esc"))
        self.cancel_action.setEnabled(False)
        self.auto_run_action = QAction("&Auto-run", self, checkable=True)
        self.auto_run_action.setChecked(self.state.auto_run)
        self.auto_run_action.setToolTip("Rerun whenever the image, layers or target change")
        self.auto_run_action.toggled.connect(self.state.set_auto_run)
        run.addAction(self.auto_run_action)

        help_menu = mb.addMenu("&Help")
        self.help_action = self._action(
            help_menu, "HookScope &help", self.show_help, QKeySequence.StandardKey.HelpContents
        )
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts)
        self._action(help_menu, "&About HookScope", self.show_about)

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        self.addAction(action)
        return action

    def _connect_state(self) -> None:
        st = self.state
        st.busyChanged.connect(self._on_busy)
        st.progress.connect(self._on_progress)
        st.modelChanged.connect(self._on_model)
        st.resultChanged.connect(self._on_result)
        st.errorRaised.connect(self._on_error)
        st.loadFailed.connect(self._on_load_failed)
        st.statusMessage.connect(self.show_message)
        st.imageChanged.connect(self._on_image)
        st.autoRunChanged.connect(self.auto_run_action.setChecked)

    def _on_image(self) -> None:
        if self.state.image_path:
            self._push_recent("recent/images", str(Path(self.state.image_path).resolve()))

    # -- file actions -------------------------------------------------------------------------
    def open_model_dialog(self) -> None:
        dialog = OpenModelDialog(self, self.state.model_args)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.state.load_model(**dialog.values())

    def open_image_dialog(self) -> None:
        path = filedialogs.open_file(self, "Open image", IMAGE_FILTER)
        if path:
            self.state.load_image(path)

    def _push_recent(self, key: str, value: str) -> None:
        items = [v for v in self._recent(key) if v != value]
        settings().setValue(key, [value, *items][:RECENT_MAX])

    def _recent(self, key: str) -> list[str]:
        value = settings().value(key) or []
        return [value] if isinstance(value, str) else list(value)

    def _fill_recent_models(self) -> None:
        menu = self.recent_models_menu
        menu.clear()
        for text in self._recent("recent/models"):
            try:
                args = json.loads(text)
            except ValueError:
                continue
            label = args.get("spec", "?") + (
                f"  ({args['weights']})" if args.get("weights") else ""
            )
            menu.addAction(label, lambda a=args: self.state.load_model(**a))
        menu.setEnabled(bool(menu.actions()))

    def _fill_recent_images(self) -> None:
        menu = self.recent_images_menu
        menu.clear()
        for path in self._recent("recent/images"):
            if Path(path).is_file():  # moved or deleted files are not offered
                menu.addAction(path, lambda p=path: self.state.load_image(p))
        menu.setEnabled(bool(menu.actions()))

    # -- export -------------------------------------------------------------------------------
    def _on_focus(self, _old, new) -> None:
        w = new
        while w is not None:
            if isinstance(w, BaseDock):
                self._current_dock = w
                return
            w = w.parentWidget()

    def current_dock(self) -> BaseDock:
        """The dock the user last worked in (the first analysis dock otherwise)."""
        dock = self._current_dock
        if dock is not None and dock.isVisible():
            return dock
        return self.analysis_docks[0] if self.analysis_docks else self.stats_dock

    def export_figure(self) -> None:
        self.current_dock().save_figure()

    def export_all_dialog(self) -> None:
        folder = filedialogs.new_or_existing_dir(
            self, "Export all figures and data to the folder (created if new)", "hookscope_export"
        )
        if folder:
            self.export_all(folder)

    def export_all(self, folder: str | Path) -> list[Path]:
        """Every visible dock's figure as PNG, raw arrays as NPZ (+ JSON sidecar), settings JSON."""
        from hookscope.core.errors import HookScopeError
        from hookscope.core.io.export import save_arrays, write_json

        folder = Path(folder)
        written: list[Path] = []
        try:
            folder.mkdir(parents=True, exist_ok=True)
            arrays = dict(self.state.snapshot.arrays()) if self.state.snapshot else {}
            for dock in self.docks:
                for key, value in dock.export_arrays().items():
                    arrays[f"{dock.figure_name()}/{key}"] = value
                if not dock.toggleViewAction().isChecked() and not dock.stacked_away:
                    continue  # closed by the user; panels waiting in their place still count
                written += write_tables(dock, folder)
                # A figure drawn from its arrays, at its own size; never a grab of a hidden
                # widget (a 140-px picture of buttons and a title, no numbers).
                panels = dock.figure_panels() if dock.has_figure() else []
                if panels:
                    path = folder / f"{dock.figure_name()}.png"
                    save_panels(panels, path, title=dock.TITLE)
                    written.append(path)
            settings = self.settings_dict()
            if arrays:
                written += save_arrays(folder / "arrays.npz", arrays, settings)
            written.append(write_json(folder / "settings.json", settings))
        except HookScopeError as exc:
            self.state.errorRaised.emit(str(exc))
            return written
        except OSError as exc:
            self.state.errorRaised.emit(f"Could not export to {folder}: {exc.strerror or exc}.")
            return written
        self.show_message(f"Exported {len(written)} files to {folder}")
        return written

    def settings_dict(self) -> dict:
        """The choices behind the current figures, as plain data."""
        st, snap = self.state, self.state.snapshot
        return {
            "model": st.model_args,
            "model_name": st.loaded.name if st.loaded else None,
            "image": st.image_path,
            "input_spec": st.input_spec.to_dict() if st.input_spec else None,
            "layers": st.layers,
            "target": snap.target if snap else st.target,
            "target_name": snap.target_name if snap else None,
            "cam_method": st.cam_method,
            "cam_layers": st.cam_layers,
            "colormap": st.colormap,
            "alpha": st.alpha,
            "topk": [list(t) for t in snap.topk] if snap else None,
            "docks": {d.objectName(): d.settings() for d in self.docks if d.settings()},
        }

    # -- help ---------------------------------------------------------------------------------
    def shortcuts_text(self) -> str:
        rows = []
        for action in self.actions():
            if not action.shortcut().isEmpty():
                key = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
                rows.append(
                    f"<tr><td><b>{key}</b></td><td>{action.text().replace('&', '')}</td></tr>"
                )
        return "<table cellspacing=6>" + "".join(rows) + "</table>"

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", self.shortcuts_text())

    def help_text(self) -> str:
        """How to use the window in a few lines, then every shortcut."""
        return (
            "<p><b>HookScope</b>: tick layers in <b>Model</b>, pick an image in <b>Image</b>, "
            "click a class in <b>Predictions</b> to explain it; the centre shows the panel the "
            "<b>Panels</b> bar on the left brings forward (Activations, Gradients, CAM, "
            "Attribution, Trust, …). Tab moves between the panels; Esc stops a long run.</p>"
            "<p>The README describes every panel and the command line.</p>" + self.shortcuts_text()
        )

    def show_help(self) -> None:
        """F1: the help, in a box that does not block the window (it can stay open)."""
        box = getattr(self, "help_box", None)
        if box is None:
            box = self.help_box = QMessageBox(self)
            box.setWindowTitle("HookScope help")
            box.setModal(False)
            box.setStandardButtons(QMessageBox.StandardButton.Close)
            box.setEscapeButton(QMessageBox.StandardButton.Close)  # Esc closes it, as in Qt
        box.setText(self.help_text())
        box.show()
        box.raise_()
        box.activateWindow()  # the keys go to the box (a non-modal box stayed behind them)

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About HookScope",
            "<b>HookScope</b><br>Look inside PyTorch models: tick layers to hook, run one "
            "forward and backward pass, and see activations, gradients and CAM overlays.",
        )


def write_tables(dock: BaseDock, folder: Path) -> list[Path]:
    """The dock's tables as CSV named after it (``layer_stats.csv``, ``compare_2.csv``) and its
    code or text panes as ``.txt`` (Hook code)."""
    import csv

    written = []
    for k, (header, rows) in enumerate(dock.export_tables()):
        path = folder / f"{dock.figure_name()}{f'_{k + 1}' if k else ''}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        written.append(path)
    for k, text in enumerate(dock.export_texts()):
        path = folder / f"{dock.figure_name()}{f'_{k + 1}' if k else ''}.txt"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


class OpenModelDialog(QDialog):
    """Spec, weights file, trust-pickle and device."""

    def __init__(self, parent: QWidget | None, current: dict | None = None):
        super().__init__(parent)
        self.setWindowTitle("Open model")
        current = current or {}
        form = QFormLayout(self)
        self.spec = QComboBox(self)
        self.spec.setEditable(True)
        self.spec.addItems(MODEL_EXAMPLES)
        self.spec.setCurrentText(current.get("spec") or "demo")
        self.spec.setMinimumWidth(360)
        self.spec.setToolTip("demo, torchvision:NAME[:WEIGHTS], file.py:factory or model.pt")
        spec_row = QHBoxLayout()
        spec_row.addWidget(self.spec, 1)
        browse_model = QPushButton("File…", self)
        browse_model.clicked.connect(self._browse_model)
        spec_row.addWidget(browse_model)
        form.addRow("Model", spec_row)
        self.weights = QLineEdit(current.get("weights") or "", self)
        self.weights.setPlaceholderText("optional state_dict file (.pt / .pth)")
        weights_row = QHBoxLayout()
        weights_row.addWidget(self.weights, 1)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse_weights)
        weights_row.addWidget(browse)
        form.addRow("Weights", weights_row)
        self.trust = QCheckBox("Trust pickle (unpickling runs code from the file)", self)
        self.trust.setChecked(bool(current.get("trust_pickle")))
        form.addRow("", self.trust)
        self.device = QComboBox(self)
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.device.setCurrentText(current.get("device") or "auto")
        if self.device.currentText() not in ("auto", "cpu", "cuda", "mps"):
            self.device.setCurrentText("cpu")
        form.addRow("Device", self.device)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse_model(self) -> None:
        path = filedialogs.open_file(self, "Model file", "Models (*.pt *.pth *.py);;All files (*)")
        if path:
            self.spec.setCurrentText(path + (":build" if path.endswith(".py") else ""))

    def _browse_weights(self) -> None:
        path = filedialogs.open_file(
            self, "Weights file", "Weights (*.pt *.pth *.bin);;All files (*)"
        )
        if path:
            self.weights.setText(path)

    def values(self) -> dict:
        return {
            "spec": self.spec.currentText().strip(),
            "weights": self.weights.text().strip() or None,
            "trust_pickle": self.trust.isChecked(),
            "device": self.device.currentText(),
        }


def _two_lines(title: str) -> str:
    """Two-word titles on two lines ("Channel importance"), so the panel bar stays narrow."""
    head, sep, tail = title.partition(" ")
    return f"{head}\n{tail}" if sep else title


def _set_checked(action: QAction | None, on: bool) -> None:
    if action is not None:
        with QSignalBlocker(action):
            action.setChecked(on)


def dock_area_map(window: QMainWindow) -> dict[str, tuple[int, bool]]:
    """objectName → (dock area as int, visible) for every dock (for layout checks)."""
    return {
        d.objectName(): (int(window.dockWidgetArea(d).value), d.isVisible())
        for d in window.findChildren(QDockWidget)
    }
