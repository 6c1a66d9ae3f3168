"""FeatureView: every channel of one layer output as one tiled image, plus a channel close-up.

Shared by the Activations and Gradients docks. The mosaic is ONE ``pg.ImageItem`` fed one
array (built by :func:`core.display.mosaic.tile` in one numpy step), so 2048 channels stay fast.
Vector outputs (K,) are shown as a bar plot instead.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hookscope.core.display import mosaic as mz
from hookscope.gui import figures
from hookscope.gui.widgets.draw import bar_chart
from hookscope.gui.widgets.flow import FlowLayout
from hookscope.gui.widgets.histogram import HistogramView
from hookscope.gui.widgets.panes import BACKGROUND, TEXT, ImagePane

Panel = figures.Panel
"""A figure panel as docks export them (a ``(title, rgb)`` tuple is one too)."""

SCALES = ("per channel", "shared")
PAGE_SIZES = ("64", "256", "1024", "all")
"""Tiles per page: a few hundred stay readable; 2048 in one panel are a moiré strip."""
DEFAULT_PAGE_SIZE = "256"
HINT = "Wheel zooms · drag pans · hover: value · click: close-up"
"""What the mouse does, short enough for a 1000-px window's panel (it was cut: "… · c…")."""
HINT_TIP = "Mouse wheel zooms, drag pans, hover reads a value, click a tile for a close-up"
PAGE_MAPS, PAGE_BARS, PAGE_EMPTY = 0, 1, 2
GAP = figures.NAN_RGB  # the view's background shows through NaN gaps


def _fmt(v: float) -> str:
    return f"{v:.4g}"


class StatsLabel(QLabel):
    """A channel's statistics, as high as the longest numbers need at the label's width.

    The height follows the width only: a wrapped label whose line count followed its text
    would relayout the whole panel after every run's first paint (one more paint wave).
    """

    WIDEST = (
        "<b>channel 0000</b> · zeros 100%<br>mean -8.888e+08 · std 8.888e+08<br>"
        "min -8.888e+08 · max -8.888e+08"
    )

    def __init__(self, parent=None):
        super().__init__("", parent)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._probe = QLabel(self.WIDEST)
        self._probe.setWordWrap(True)
        self.setFixedHeight(self._probe.heightForWidth(260))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        h = self._probe.heightForWidth(max(40, self.width()))
        if h != self.height():
            self.setFixedHeight(h)


class FeatureView(QWidget):
    """Mosaic + close-up + histogram + stats, or a bar plot for vectors.

    Args:
        signed: Gradients: diverging colour map, levels symmetric around 0.
        what: Word used in titles ("activation" / "gradient").

    Signals:
        channelSelected(int): The user clicked a channel (or a bar).

    Attributes:
        maps: The shown (C, h, w) maps, or None for a vector.
        vector: The shown (K,) vector, or None.
        tiles: The current :class:`core.display.mosaic.Tiles` (None for a vector).
        selected: The channel in the close-up.
    """

    channelSelected = Signal(int)

    def __init__(self, parent=None, *, signed: bool = False, what: str = "activation"):
        super().__init__(parent)
        self.signed, self.what = signed, what
        self.cmap = figures.DIVERGING if signed else "viridis"
        self.maps: np.ndarray | None = None
        self.vector: np.ndarray | None = None
        self.tiles: mz.Tiles | None = None
        self.selected = 0
        self.title = ""

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(3)
        # A row that wraps (in a narrow panel the counts go under the controls, not cut).
        row = FlowLayout(spacing=6)
        row.addWidget(QLabel("Sort", self))
        self.sort_combo = QComboBox(self)
        self.sort_combo.addItems(mz.SORT_KEYS)
        self.sort_combo.setToolTip("Order of the tiles: channel index, or largest mean / max first")
        self.sort_combo.currentTextChanged.connect(lambda _: self._redraw())
        row.addWidget(self.sort_combo)
        row.addWidget(QLabel("Scale", self))
        self.scale_combo = QComboBox(self)
        self.scale_combo.addItems(SCALES)
        self.scale_combo.setToolTip(
            "per channel: each tile uses its own range; shared: one range for all tiles"
        )
        self.scale_combo.currentTextChanged.connect(lambda _: self._redraw())
        row.addWidget(self.scale_combo)
        row.addWidget(QLabel("Show", self))
        self.page_size_combo = QComboBox(self)
        self.page_size_combo.addItems(PAGE_SIZES)
        self.page_size_combo.setCurrentText(DEFAULT_PAGE_SIZE)
        self.page_size_combo.setToolTip(
            "Tiles per page; with Sort by mean / max / std the first page is the top channels"
        )
        self.page_size_combo.currentTextChanged.connect(lambda _: self._on_page_size())
        row.addWidget(self.page_size_combo)
        self.page_spin = QSpinBox(self)
        self.page_spin.setPrefix("page ")
        self.page_spin.setMinimum(1)
        self.page_spin.setToolTip("Which page of channels the mosaic shows")
        self.page_spin.valueChanged.connect(lambda _: self._redraw())
        self.page_spin.setVisible(False)
        self.fit_button = QToolButton(self)
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Zoom the mosaic out to the whole page")
        self.fit_button.clicked.connect(lambda: self.mosaic_pane.view.autoRange(padding=0.01))
        row.addWidget(self.fit_button)
        self.info = QLabel("", self)
        self.info.setStyleSheet("color: palette(mid);")
        # Long counts must not widen the dock: the label wraps to its own line, gives way
        # when even that is too narrow, and its tooltip keeps it all.
        self.info.setMinimumWidth(20)
        row.addWidget(self.info, 1)
        outer.addLayout(row)
        self._fit_timer = QTimer(self)
        self._fit_timer.setSingleShot(True)
        self._fit_timer.setInterval(120)
        self._fit_timer.timeout.connect(self._refit)

        self.stack = QStackedWidget(self)
        outer.addWidget(self.stack, 1)

        # Page 0: mosaic | close-up + histogram + stats.
        split = QSplitter(Qt.Orientation.Horizontal, self)
        self.mosaic_pane = ImagePane("", split, colorbar=True)
        self.mosaic_pane.installEventFilter(self)
        self.mosaic_pane.hovered.connect(self._on_hover)
        self.mosaic_pane.clicked.connect(self._on_click)
        self.mosaic_item = self.mosaic_pane.image
        self.mosaic_pane.view.setBackgroundColor(GAP)  # NaN gaps between tiles show this
        self.highlight = QGraphicsRectItem()
        pen = QPen(QColor(255, 40, 40))
        pen.setCosmetic(True)
        pen.setWidth(2)
        self.highlight.setPen(pen)
        self.highlight.setZValue(10)
        self.highlight.setVisible(False)
        self.mosaic_pane.view.addItem(self.highlight)
        side = QWidget(split)
        side_lay = QVBoxLayout(side)
        side_lay.setContentsMargins(0, 0, 0, 0)
        side_lay.setSpacing(2)
        self.channel_pane = ImagePane("", side, colorbar=True)
        self.channel_pane.hovered.connect(self._on_channel_hover)
        side_lay.addWidget(self.channel_pane, 3)
        self.hist_plot = HistogramView(side)
        side_lay.addWidget(self.hist_plot, 2)
        self.stats_label = StatsLabel(side)
        side_lay.addWidget(self.stats_label)
        split.addWidget(self.mosaic_pane)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([460, 300])
        self.stack.addWidget(split)

        # Page 1: bar plot for (K,) vectors.
        self.bar_plot = pg.PlotWidget(self, background=BACKGROUND)
        self.bar_plot.setMenuEnabled(False)
        for ax in ("left", "bottom"):
            self.bar_plot.getAxis(ax).setTextPen(TEXT)
            self.bar_plot.getAxis(ax).setPen(TEXT)
        self.bar_plot.setLabel("bottom", "index", color=TEXT)
        self.bars = pg.BarGraphItem(x=[0], height=[0], width=0.8)
        self.bar_plot.addItem(self.bars)
        self.bar_plot.scene().sigMouseMoved.connect(self._on_bar_hover)
        self.bar_plot.scene().sigMouseClicked.connect(self._on_bar_click)
        self.stack.addWidget(self.bar_plot)

        # Page 2: a message.
        self.empty_label = QLabel("Run the model to see this layer.", self)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.stack.addWidget(self.empty_label)
        self.stack.setCurrentIndex(PAGE_EMPTY)

        self.hover_label = QLabel(HINT, self)
        self.hover_label.setToolTip(HINT_TIP)
        self.hover_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        # The pager sits under the mosaic, beside the hint that gives way: in the controls row
        # it made the panel ~100 px wider than a 1000-px window leaves it (a scroll bar).
        bottom = QHBoxLayout()
        bottom.addWidget(self.hover_label, 1)
        bottom.addWidget(self.page_spin)
        outer.addLayout(bottom)

    # -- data ---------------------------------------------------------------------------------
    def set_array(self, a: np.ndarray | None, title: str = "", message: str = "") -> None:
        """Show one layer output (C, h, w) / (K,) / other ranks; None shows ``message``."""
        self.title = title
        if a is None:
            self.maps = self.vector = self.tiles = None
            self.empty_label.setText(message or "Run the model to see this layer.")
            self.stack.setCurrentIndex(PAGE_EMPTY)
            self.info.setText("")
            return
        a = np.asarray(a, dtype=np.float32)
        maps = mz.as_maps(a)
        if maps is None:
            self.maps, self.tiles, self.vector = None, None, a.reshape(-1)
            self._draw_bars()
            return
        self.vector = None
        if self.maps is None or maps.shape[0] != self.maps.shape[0]:
            self.selected = 0
        self.maps = maps
        self._redraw()

    def set_colormap(self, name: str) -> None:
        """Colour map for unsigned values (signed views keep the diverging map)."""
        if self.signed or name == self.cmap:
            return
        self.cmap = name
        self._redraw()

    @property
    def order(self) -> np.ndarray:
        """Channel per tile, as currently sorted."""
        return self.tiles.order if self.tiles is not None else np.arange(0)

    def select_channel(self, channel: int) -> None:
        """Show ``channel`` in the close-up."""
        if self.maps is None or not 0 <= channel < self.maps.shape[0]:
            return
        self.selected = int(channel)
        self._draw_channel()

    # -- drawing ------------------------------------------------------------------------------
    def page_size(self) -> int:
        """Tiles per page (all channels for "all")."""
        text = self.page_size_combo.currentText()
        n = self.maps.shape[0] if self.maps is not None else 0
        return max(1, n if text == "all" else int(text))

    def _on_page_size(self) -> None:
        self.page_spin.setValue(1)
        self._redraw()

    def _mosaic_area(self) -> tuple[float, float]:
        """(height, width) the mosaic can fill, in screen pixels (4:3 before the first show).

        From the pane's widget size less its title row and colour bar: the view box itself is
        laid out later (and not at all while its page of the stack is hidden).
        """
        pane = self.mosaic_pane
        h, w = pane.height() - 28, pane.width() - 84
        return (float(h), float(w)) if h > 10 and w > 10 else (300.0, 400.0)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is self.mosaic_pane and event.type() == QEvent.Type.Resize:
            self._fit_timer.start()  # the pane changed shape: maybe another column count
        return super().eventFilter(obj, event)

    def _cols(self, n: int) -> int:
        h, w = self.maps.shape[1:]
        return mz.grid_cols(n, (h, w), self._mosaic_area())

    def _refit(self) -> None:
        # A new panel shape may want another column count to fill it.
        if self.tiles is not None and self.maps is not None:
            if self._cols(len(self.tiles.order)) != self.tiles.cols:
                self._redraw()

    def _redraw(self) -> None:
        if self.maps is None:
            if self.vector is not None:
                self._draw_bars()
            return
        maps = self.maps
        c, h, w = maps.shape
        sort = self.sort_combo.currentText()
        order = mz.channel_order(maps, sort)
        per = self.page_size()
        pages = max(1, -(-c // per))
        self.page_spin.blockSignals(True)
        self.page_spin.setMaximum(pages)
        if self.page_spin.suffix() != f" of {pages}":  # a new suffix relayouts the whole view
            self.page_spin.setSuffix(f" of {pages}")
        self.page_spin.blockSignals(False)
        # Only a layer with more than one page shows the pager (a narrow panel keeps the room).
        self.page_spin.setVisible(pages > 1)
        first = (min(self.page_spin.value(), pages) - 1) * per
        order = order[first : first + per]
        per_channel = self.scale_combo.currentText() == SCALES[0]
        self.tiles = mz.tile(
            maps, order, signed=self.signed, per_channel=per_channel, cols=self._cols(len(order))
        )
        self.mosaic_pane.set_values(self.tiles.image, self.cmap, self.tiles.levels)
        shown = (
            f"{c} channels of {h}×{w}"
            if len(order) == c
            else f"channels {first + 1}–{first + len(order)} of {c} ({h}×{w})"
        )
        by = "index" if sort == "index" else f"{sort}, largest first"
        self.mosaic_pane.set_title(f"{self.title} — {shown}, by {by}")
        self.info.setText(f"{c} channels · {h}×{w}")
        self.info.setToolTip(self.info.text())
        self.sort_combo.setEnabled(True)
        self.scale_combo.setEnabled(True)
        self.page_size_combo.setEnabled(True)
        self.stack.setCurrentIndex(PAGE_MAPS)
        self.selected = min(self.selected, c - 1)
        self._draw_channel()

    def channel_levels(self, ch: np.ndarray) -> tuple[float, float]:
        return mz.signed_levels(ch) if self.signed else mz.value_levels(ch)

    def _draw_channel(self) -> None:
        ch = self.maps[self.selected]
        self.channel_pane.set_values(ch, self.cmap, self.channel_levels(ch))
        self.channel_pane.set_title(f"channel {self.selected}")
        self.hist_plot.set_data(*mz.histogram(ch))
        s = mz.stats(ch)
        self.stats_label.setText(
            f"<b>channel {self.selected}</b> · zeros {s['zeros']:.0%}<br>"
            f"mean {_fmt(s['mean'])} · std {_fmt(s['std'])}<br>"
            f"min {_fmt(s['min'])} · max {_fmt(s['max'])}"
        )
        origin = self.tiles.origin(self.selected) if self.tiles is not None else None
        if origin is None:
            self.highlight.setVisible(False)
        else:
            y, x = origin
            h, w = self.tiles.tile
            self.highlight.setRect(x - 0.5, y - 0.5, w + 1, h + 1)
            self.highlight.setVisible(True)

    def _draw_bars(self) -> None:
        v = self.vector
        x = np.arange(len(v))
        red, blue = (200, 70, 60), (66, 110, 200)
        rgb = [red if b >= 0 else blue for b in v] if self.signed else [blue] * len(v)
        # A cosmetic 1-px outline keeps every bar visible when 1000 of them share the width.
        pens = [pg.mkPen(c, width=1, cosmetic=True) for c in rgb]
        brushes = [pg.mkBrush(c) for c in rgb]
        self.bars.setOpts(x=x, height=v, width=0.8, brushes=brushes, pens=pens)
        self.bar_plot.setTitle(f"{self.title} — {len(v)} values", color=TEXT, size="9pt")
        self.bar_plot.autoRange()
        self.info.setText(f"vector of {len(v)} values · hover a bar for its value")
        self.sort_combo.setEnabled(False)
        self.scale_combo.setEnabled(False)
        self.page_size_combo.setEnabled(False)
        self.page_spin.setVisible(False)
        self.stack.setCurrentIndex(PAGE_BARS)

    # -- mouse --------------------------------------------------------------------------------
    def describe(self, y: float, x: float) -> str:
        """Text for mosaic pixel (y, x): channel, position in the tile and the raw value."""
        if self.tiles is None or self.maps is None or np.isnan(y):
            return HINT
        ch = self.tiles.channel_at(y, x)
        if ch is None:
            return HINT
        h, w = self.tiles.tile
        ty, tx = int(y) % (h + self.tiles.pad), int(x) % (w + self.tiles.pad)
        return f"channel {ch}  ·  (y {ty}, x {tx})  ·  {self.what} {_fmt(self.maps[ch, ty, tx])}"

    def _on_hover(self, y: float, x: float) -> None:
        text = self.describe(y, x)
        self.hover_label.setText(text)
        self.mosaic_pane.setToolTip("" if text == HINT else text)

    def _on_click(self, y: float, x: float) -> None:
        ch = self.tiles.channel_at(y, x) if self.tiles is not None else None
        if ch is not None:
            self.select_channel(ch)
            self.channelSelected.emit(ch)

    def _on_channel_hover(self, y: float, x: float) -> None:
        if self.maps is None or np.isnan(y):
            return
        v = self.maps[self.selected, int(y), int(x)]
        self.hover_label.setText(
            f"channel {self.selected}  ·  (y {int(y)}, x {int(x)})  ·  {self.what} {_fmt(v)}"
        )

    def _bar_at(self, scene_pos) -> int | None:
        if self.vector is None:
            return None
        p = self.bar_plot.getPlotItem().vb.mapSceneToView(scene_pos)
        i = int(round(p.x()))
        return i if 0 <= i < len(self.vector) else None

    def _on_bar_hover(self, pos) -> None:
        i = self._bar_at(pos)
        text = " " if i is None else f"index {i}  ·  {self.what} {_fmt(self.vector[i])}"
        self.hover_label.setText(text)
        self.bar_plot.setToolTip(text.strip())

    def _on_bar_click(self, ev) -> None:
        i = self._bar_at(ev.scenePos())
        if i is not None:
            self.channelSelected.emit(i)

    # -- export -------------------------------------------------------------------------------
    def panels(self) -> list[Panel]:
        """What the view shows, as figure panels (RGB arrays with titles)."""
        if self.vector is not None:
            return [(f"{self.title} ({len(self.vector)} values)", self._bar_rgb())]
        if self.maps is None or self.tiles is None:
            return []
        t = self.tiles
        ch = self.maps[self.selected]
        lv = self.channel_levels(ch)
        counts, edges = mz.histogram(ch)
        title = f"{self.title}: {self.maps.shape[0]} channels by {self.sort_combo.currentText()}"
        # The panes' colours: set_values colours exactly as figures.colorize does.
        return [
            Panel(
                title,
                figures.colorize(t.image, self.cmap, t.levels),
                figures.ColorBar(self.cmap, *t.levels),
            ),
            Panel(
                f"channel {self.selected}",
                figures.colorize(ch, self.cmap, lv),
                figures.ColorBar(self.cmap, *lv),
            ),
            Panel(
                f"channel {self.selected} histogram",
                bar_chart(counts, edges=edges, size=(300, 200)),
            ),
        ]

    def _bar_rgb(self) -> np.ndarray:
        return bar_chart(self.vector, size=(520, 260), signed_colours=self.signed)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The raw data behind the view."""
        out: dict[str, np.ndarray] = {}
        if self.vector is not None:
            out[f"{prefix}/values"] = self.vector
        if self.maps is not None and self.tiles is not None:
            out[f"{prefix}/maps"] = self.maps
            out[f"{prefix}/order"] = self.tiles.order
            out[f"{prefix}/mosaic"] = self.tiles.image
        return out

    def settings(self) -> dict:
        return {
            "sort": self.sort_combo.currentText(),
            "scale": self.scale_combo.currentText(),
            "per_page": self.page_size_combo.currentText(),
            "page": self.page_spin.value(),
            "colormap": self.cmap,
            "selected_channel": self.selected,
        }
