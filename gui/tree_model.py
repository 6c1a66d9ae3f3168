"""The module tree as a Qt item model, with a check box per module to hook it."""

from __future__ import annotations

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt

from hookscope.core.engine.tree import ModuleNode, ModuleTree

COLUMNS = ("Module", "Type", "Output", "Params", "Calls")
NAME_ROLE = Qt.ItemDataRole.UserRole + 1
"""Qualified module name of a row."""
FILTER_ROLE = Qt.ItemDataRole.UserRole + 2
"""Text the filter box matches: qualified name and type."""

Index = QModelIndex | QPersistentModelIndex
_TOP = QModelIndex()  # the invisible root, as a shared default argument


def format_shape(shape, batch: bool = False) -> str:
    """``(1, 64, 56, 56)`` → ``64×56×56`` (the batch dim shown only when asked)."""
    if not shape:
        return "–"
    dims = shape if batch or len(shape) < 2 else shape[1:]
    return "×".join(str(s) for s in dims)


def short_count(n: int) -> str:
    """``11689512`` → ``11.7M``; small counts stay exact."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


class ModuleTreeModel(QAbstractItemModel):
    """Rows are modules (the root model on top); column 0 is checkable.

    Ticking a row calls ``state.set_layer_ticked``; the model listens to
    ``state.layersChanged`` to show the ticks, so the state stays the one source of truth.
    """

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.tree: ModuleTree | None = None
        self._parent: dict[str, ModuleNode | None] = {}
        self._row: dict[str, int] = {}
        self._ticked: set[str] = set()
        state.modelChanged.connect(self.reload)
        state.layersChanged.connect(self._on_layers)
        state.shapesChanged.connect(self._on_shapes)

    # -- data from the state -----------------------------------------------------------------
    def reload(self) -> None:
        """Rebuild from ``state.tree``."""
        self.beginResetModel()
        self.tree = self.state.tree
        self._parent, self._row = {}, {}
        if self.tree is not None:
            self._parent[self.tree.root.name] = None
            self._row[self.tree.root.name] = 0
            for node in self.tree.nodes():
                for i, child in enumerate(node.children):
                    self._parent[child.name] = node
                    self._row[child.name] = i
        self._ticked = set(self.state.layers)
        self.endResetModel()

    def _on_layers(self, layers: list) -> None:
        changed = self._ticked.symmetric_difference(layers)
        self._ticked = set(layers)
        for name in changed:
            idx = self.index_of(name)
            if idx.isValid():
                self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.CheckStateRole])

    def _on_shapes(self) -> None:
        """Same nodes, new output shapes and call counts: repaint every row's text."""
        if self.tree is None:
            return
        last = len(COLUMNS) - 1
        for node in self.tree.nodes():
            first = self.index_of(node.name)
            if first.isValid():
                self.dataChanged.emit(first, self.index_of(node.name, last))

    def node(self, index: Index) -> ModuleNode | None:
        return index.internalPointer() if index.isValid() else None

    def index_of(self, name: str, column: int = 0) -> QModelIndex:
        """Index of the module called ``name`` (invalid if unknown)."""
        if self.tree is None or name not in self._row:
            return QModelIndex()
        parent = self._parent[name]
        node = parent.children[self._row[name]] if parent is not None else self.tree.root
        return self.createIndex(self._row[name], column, node)

    def node_count(self) -> int:
        """Total number of rows at every depth."""
        return len(self._row)

    # -- QAbstractItemModel ------------------------------------------------------------------
    def index(self, row: int, column: int, parent: Index = _TOP) -> QModelIndex:
        if self.tree is None or not (0 <= column < len(COLUMNS)):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, self.tree.root) if row == 0 else QModelIndex()
        node = self.node(parent)
        if node is None or not 0 <= row < len(node.children):
            return QModelIndex()
        return self.createIndex(row, column, node.children[row])

    def parent(self, index: Index = _TOP) -> QModelIndex:  # type: ignore[override]
        node = self.node(index)
        if node is None:
            return QModelIndex()
        up = self._parent.get(node.name)
        if up is None:
            return QModelIndex()
        return self.createIndex(self._row[up.name], 0, up)

    def rowCount(self, parent: Index = _TOP) -> int:
        if self.tree is None:
            return 0
        if not parent.isValid():
            return 1
        if parent.column() != 0:
            return 0
        node = self.node(parent)
        return len(node.children) if node is not None else 0

    def columnCount(self, parent: Index = _TOP) -> int:
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def flags(self, index: Index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        f = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        node = self.node(index)
        # A module the forward never calls has nothing to record (unknown if the dry run failed).
        runs = node.calls > 0 or (self.tree is not None and self.tree.error is not None)
        if index.column() == 0 and runs:
            f |= Qt.ItemFlag.ItemIsUserCheckable
        return f

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        node = self.node(index)
        if node is None:
            return None
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return node.short_name
            if col == 1:
                return node.type
            if col == 2:
                return format_shape(node.out_shape)
            if col == 3:
                return short_count(node.total_params)
            if col == 4:
                return str(node.calls)
        elif role == Qt.ItemDataRole.CheckStateRole and col == 0:
            ticked = node.name in self._ticked
            return Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked
        elif role == Qt.ItemDataRole.ToolTipRole:
            shapes = ", ".join(
                f"{k or 'out'}: {format_shape(v, batch=True)}" for k, v in node.out_shapes.items()
            )
            tip = f"{node.name or '(model)'} — {node.type}, {node.total_params:,} parameters"
            if shapes:
                tip += f"\n{shapes}"
            if node.calls == 0:
                tip += "\nNot called in the forward pass: nothing to record."
            elif node.calls > 1:
                tip += f"\nRuns {node.calls} times per forward (one record per call)."
            return tip
        elif role == Qt.ItemDataRole.TextAlignmentRole and col >= 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif role == Qt.ItemDataRole.ForegroundRole and node.calls == 0 and col == 0:
            from PySide6.QtGui import QColor

            return QColor(140, 140, 140)
        elif role == NAME_ROLE:
            return node.name
        elif role == FILTER_ROLE:
            return f"{node.name} {node.type}"
        return None

    def setData(self, index: Index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        node = self.node(index)
        if node is None or role != Qt.ItemDataRole.CheckStateRole or index.column() != 0:
            return False
        if not self.flags(index) & Qt.ItemFlag.ItemIsUserCheckable:
            return False
        checked = value in (Qt.CheckState.Checked, Qt.CheckState.Checked.value, 2, True)
        self.state.set_layer_ticked(node.name, checked)
        return True

    def types(self) -> list[tuple[str, int]]:
        """Module types present, most common first, with their counts."""
        counts: dict[str, int] = {}
        for n in self.tree.nodes() if self.tree else []:
            if n.name:
                counts[n.type] = counts.get(n.type, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def names_of_type(self, type_name: str) -> list[str]:
        """Names of the modules of ``type_name`` that run in the forward."""
        nodes = self.tree.nodes() if self.tree else []
        return [n.name for n in nodes if n.name and n.type == type_name and n.calls]
