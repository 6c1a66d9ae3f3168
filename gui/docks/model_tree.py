"""Model tree dock: the module tree with a check box per module to hook it."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSortFilterProxyModel, Qt, QTimer
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QToolButton,
    QTreeView,
)

from hookscope.gui.docks.base import BaseDock
from hookscope.gui.tree_model import COLUMNS, FILTER_ROLE, NAME_ROLE, ModuleTreeModel


class ModelTreeDock(BaseDock):
    """Tick modules to hook them; click one to show it in the analysis docks."""

    TITLE = "Model"
    OBJECT_NAME = "ModelTreeDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.model = ModuleTreeModel(state, self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setAutoAcceptChildRows(False)
        self.proxy.setFilterRole(FILTER_ROLE)
        self.proxy.setFilterKeyColumn(0)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter modules by name or type…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._on_filter)
        self.add_header_widget(self.filter_edit)
        self.header.setStretch(0, 1)

        self.tick_button = QToolButton(self)
        self.tick_button.setText("Tick…")
        self.tick_button.setToolTip("Tick every module of a type, or untick all")
        self.tick_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.tick_menu = QMenu(self)
        self.tick_menu.aboutToShow.connect(self._fill_tick_menu)
        self.tick_button.setMenu(self.tick_menu)
        self.add_header_widget(self.tick_button)

        self.view = QTreeView(self)
        self.view.setModel(self.proxy)
        self.view.setUniformRowHeights(True)
        self.view.setIndentation(12)  # deep trees (resnet blocks) keep their columns in view
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QTreeView.SelectionBehavior.SelectRows)
        head = self.view.header()
        head.setStretchLastSection(False)
        for col in range(1, self.model.columnCount()):
            head.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        # Output right after Module: in the narrow column the shapes were the part cut off
        # (Type, parameters and calls follow; every cell's tooltip has them all).
        head.moveSection(COLUMNS.index("Output"), 1)
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.view.setTextElideMode(Qt.TextElideMode.ElideLeft)  # "…layer_3", the telling end
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.timeout.connect(self.fit_columns)
        for signal in (self.view.expanded, self.view.collapsed, self.proxy.layoutChanged):
            signal.connect(lambda *_: self._fit_timer.start(0))
        self.proxy.modelReset.connect(lambda: self._fit_timer.start(0))
        self.view.viewport().installEventFilter(self)
        self.view.clicked.connect(self._on_clicked)
        self.body.addWidget(self.view, 1)

        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.body.addWidget(self.summary)

        state.modelChanged.connect(self._on_model)
        state.layersChanged.connect(self._update_summary)
        self._on_model()

    def fit_columns(self) -> None:
        """Names as wide as they are, unless that pushes the shapes out of view.

        A deep tree's names (a ViT's encoder.layers.encoder_layer_3) took the whole column
        at 1280 px and the Output shapes were cut; then the names give way (elided from the
        left, whole in the tooltip) down to about half the view.
        """
        view, head = self.view, self.view.header()
        out = COLUMNS.index("Output")
        names = max(view.sizeHintForColumn(0), head.sectionSizeHint(0))
        shapes = max(view.sizeHintForColumn(out), head.sectionSizeHint(out))
        room = view.viewport().width()
        width = names if names + shapes <= room else max(room - shapes, room // 2, 60)
        if head.sectionSize(0) != width:
            head.resizeSection(0, width)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt name)
        if obj is self.view.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_timer.start(0)
        return super().eventFilter(obj, event)

    def _on_model(self) -> None:
        if self.state.tree is None:
            self.summary.setText("No model loaded.")
            return
        # Open the top level, and every block holding a ticked layer so the ticks are in view.
        self.view.expand(self.proxy.index(0, 0))
        for name in self.state.layers:
            self.reveal(name)
        self._update_summary()

    def reveal(self, name: str) -> None:
        """Expand the ancestors of module ``name``."""
        parts = name.split(".")
        for i in range(1, len(parts)):
            src = self.model.index_of(".".join(parts[:i]))
            if src.isValid():
                self.view.expand(self.proxy.mapFromSource(src))

    def _update_summary(self, *_) -> None:
        tree, lm = self.state.tree, self.state.loaded
        if tree is None or lm is None:
            return
        text = (
            f"<b>{lm.name}</b> · {self.model.node_count()} modules · "
            f"{tree.root.total_params:,} parameters · {len(self.state.layers)} hooked"
        )
        if tree.error:
            text += f"<br><i>{tree.error}</i>"
        self.summary.setText(text)

    def _on_filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        if text.strip():
            self.view.expandAll()

    def _on_clicked(self, index) -> None:
        name = index.data(NAME_ROLE)
        if name is not None:
            self.state.select(name, 0)

    def _fill_tick_menu(self) -> None:
        self.tick_menu.clear()
        for type_name, count in self.model.types()[:25]:
            action = self.tick_menu.addAction(f"Tick all {type_name} ({count})")
            action.triggered.connect(lambda _=False, t=type_name: self.tick_type(t))
        self.tick_menu.addSeparator()
        self.tick_menu.addAction("Untick all", lambda: self.state.set_layers([]))

    def tick_type(self, type_name: str) -> None:
        """Tick every module of ``type_name`` (one rerun)."""
        names = self.model.names_of_type(type_name)
        self.state.set_layers([*self.state.layers, *names])
