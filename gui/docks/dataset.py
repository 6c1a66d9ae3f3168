"""Dataset dock: scan a folder of images and see the model's strategies as clusters (SpRAy).

Runs ``core.jobs.scan.scan_job`` with one ``ScanSettings`` in the worker's long lane (progress
with images/s and time left; Cancel leaves a partial folder that the next Run resumes; clicks
elsewhere in the app run between its short batches). Rows stream in while it runs: the points
(at a provisional place, grey: not clustered yet), the filters, the mean map and the gallery
fill as each batch lands (:class:`~core.jobs.scan.LiveScan`). Then it shows the folder it wrote
(or one reopened with *Open scan…*, no rerun): the 2-D embedding as a scatter coloured by cluster,
filters (cluster, label, prediction, right/wrong), the selected cluster's mean map and
composition, and a gallery of its images with their maps. Clicking a point or a thumbnail
makes that image the current image of the app (through ``AppState.load_image``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hookscope.core.errors import HookScopeError
from hookscope.core.io.concept_outputs import cluster_concepts, concept_strip, read_concepts
from hookscope.core.io.scan_outputs import REPORT_FILE, open_scan, read_settings
from hookscope.core.jobs.concept_view import find_concepts_job, remember_concepts
from hookscope.core.jobs.scan import LiveScan, ScanSettings, app_batch_size, scan_job
from hookscope.core.methods import explainers
from hookscope.core.reporting import SCANNING
from hookscope.gui import figures, filedialogs, recent_atlases
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.qtutil import qimage_to_rgb, rgb_to_pixmap
from hookscope.gui.widgets.job_control import DockJob
from hookscope.gui.widgets.panes import BACKGROUND, TEXT, ImagePane

CLUSTER_COLORS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
"""Categorical colours by cluster id (Tableau 10), shared by the scatter and the report."""
UNCLUSTERED = (150, 150, 150)
TEXT_CSS = "rgb({}, {}, {})".format(*TEXT)
THUMB = 96
PATCH = 40
"""Side of a concept's patch crop in the cluster's concept list."""
PATCHES = 3
"""Top patches shown per concept in the list (the tooltip names them)."""
"""Side of a gallery thumbnail (the image as the model saw it, its map blended over it)."""
GALLERY_MAX = 60
STRIP_MAX = 8
"""Thumbnails in the saved figure's strip."""
OUT_SUFFIX = "-hookscope-scan"
PICK_PX = 12
"""A click this close to a point (in screen pixels) opens its image."""
LIVE_MS = 500
"""While a scan runs, the rows that landed are drawn at most this often."""

ALL = None
CORRECTNESS = (("Right and wrong", None), ("Right only", True), ("Wrong only", False))


def cluster_color(cid: int) -> tuple[int, int, int]:
    """The colour of cluster ``cid`` (grey for -1: not clustered yet)."""
    return UNCLUSTERED if cid < 0 else CLUSTER_COLORS[cid % len(CLUSTER_COLORS)]


def default_out(images: str | Path, identity: dict | None = None) -> Path:
    """Where a scan of ``images`` goes when the user names no folder.

    ``<folder>-hookscope-scan`` next to the image folder (in the home folder when that one is
    read-only); when it holds a scan with other settings, ``…-2``, ``…-3``, … so a new layer
    or method gets its own folder and rerunning the same settings resumes the old one.
    """
    images = Path(images).expanduser().resolve()
    parent = images.parent if os.access(images.parent, os.W_OK) else Path.home()
    base = parent / f"{images.name}{OUT_SUFFIX}"
    for k in range(1, 100):
        out = base if k == 1 else base.with_name(f"{base.name}-{k}")
        if not out.exists():
            return out
        old = (read_settings(out) or {}).get("identity") if out.is_dir() else None
        if old is not None and all(old.get(key) == v for key, v in (identity or {}).items()):
            return out
    return base


class WrapLabel(QLabel):
    """A word-wrapped label that takes the height its width needs without height-for-width.

    A height-for-width child makes the dock's scroll area lay the whole dock out at its
    preferred height, so it would scroll long before reaching its minimum.
    """

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return False

    def setText(self, text: str) -> None:  # noqa: N802
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def sizeHint(self) -> QSize:  # noqa: N802
        hint = super().sizeHint()
        h = self.heightForWidth(max(1, self.width()))
        if h > 0:
            hint.setHeight(h)
        return hint

    def _fit(self) -> None:
        h = self.heightForWidth(max(1, self.width()))
        if h > 0 and h != self.minimumHeight():
            self.setMinimumHeight(h)
            self.updateGeometry()


class ScanJob(DockJob):
    """DockJob with the scan's own progress line (images/s, time left), cancel and error hooks."""

    def __init__(self, *args, bar: QProgressBar, on_cancelled, on_failed=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.bar, self.on_cancelled, self.on_failed = bar, on_cancelled, on_failed
        self._start: tuple[float, int] | None = None

    def submit(self, *args, **kwargs) -> int:
        self._start = None
        self.bar.setRange(0, 0)
        self.bar.setVisible(True)
        return super().submit(*args, **kwargs)

    def _finish(self) -> None:
        super()._finish()
        self.bar.setVisible(False)

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        if self.state.worker.stage_of(self.job_id) != SCANNING:
            self.label.setText(f"{message} {total} images…")
            return
        now = time.perf_counter()
        if self._start is None:  # the first report counts the images resumed from disk
            self._start = (now, done)
        t0, d0 = self._start
        rate = (done - d0) / (now - t0) if now > t0 and done > d0 else 0.0
        text = f"Scanning {done} / {total} images"
        if rate > 0:
            left = (total - done) / rate
            text += f" · {rate:.1f} images/s · {int(left // 60)}:{int(left % 60):02d} left"
        if d0:
            text += f" ({d0} resumed)"
        self.label.setText(text + " (Cancel keeps the rows so far)")

    def _on_cancelled(self, job_id: int, kind: str) -> None:
        mine = job_id == self.job_id
        super()._on_cancelled(job_id, kind)
        if mine:
            self.on_cancelled()

    def _on_error(self, message: str) -> None:
        super()._on_error(message)
        if self.on_failed is not None:
            self.on_failed()


class DatasetDock(BaseDock):
    """Folder, masks, output and scan options; the scatter, filters, mean map and gallery."""

    TITLE = "Dataset"
    OBJECT_NAME = "DatasetDock"
    batch_size: int | None = None
    """Images per batch; None: short batches for the model's size (``app_batch_size``)."""
    workers = 0
    """Decoding happens in the worker thread: no processes to spawn from inside the app."""

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.scan = None  # core.io.scan_outputs.ScanOutputs on screen
        self._rows_by_path: dict[str, int] = {}
        self._thumbs: dict[int, np.ndarray] = {}
        self._picked: int | None = None  # cluster picked by a click while the filter is "All"
        self._current: int | None = None  # row of the app's current image, if in the scan
        self._out: Path | None = None  # folder of the running scan
        self.live: LiveScan | None = None  # the running scan's rows so far
        self._scan_model = None  # the LoadedModel the last scan ran with
        self._before_run = None  # the scan on screen when Run was pressed
        self._indexed = 0  # rows of the scan on screen in _rows_by_path
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_MS)
        self._live_timer.timeout.connect(self._show_live)

        self.open_button = _button("Open scan…", self)
        self.open_button.setToolTip("Show a finished (or cancelled) scan folder without rerunning")
        self.open_button.clicked.connect(lambda: self.open_dialog())
        self.add_header_widget(self.open_button)
        self.run_button = _button("Run", self)
        self.run_button.setToolTip(
            "Scan every image below the folder (an interrupted scan resumes)"
        )
        self.run_button.clicked.connect(lambda: self.run())
        self.add_header_widget(self.run_button)
        self.cancel_button = _button("Cancel", self)
        self.cancel_button.setToolTip("Stop after the current batch; the rows so far are kept")
        self.add_header_widget(self.cancel_button)
        self.report_button = QToolButton(self)
        self.report_button.setText("Report")
        self.report_button.setAutoRaise(True)
        self.report_button.setToolTip("Open the scan's report.html in the browser")
        self.report_button.clicked.connect(self.open_report)
        self.report_button.setEnabled(False)
        self.add_header_widget(self.report_button)
        self.atlas_button = _button("Build atlas…", self)
        self.atlas_button.setToolTip(
            "Channel atlas of the layer over the folder: each channel's top images, cropped to "
            "its receptive field (shown in the Activations panel)"
        )
        self.atlas_button.clicked.connect(lambda: self.build_atlas())
        self.add_header_widget(self.atlas_button)
        self.concepts_button = _button("Find concepts…", self)
        self.concepts_button.setToolTip(
            "NMF concepts of the scan's layer over its images, each cluster's concepts ranked "
            "by importance for the explained class (concepts.json; the CAM panel shows them)"
        )
        self.concepts_button.clicked.connect(lambda: self.find_concepts())
        self.add_header_widget(self.concepts_button)
        self.k_combo = QComboBox(self)
        self.k_combo.addItems(["auto", *(str(k) for k in range(2, 11))])
        self.k_combo.setToolTip("How many concepts: auto (the reconstruction error's elbow) or K")
        self.add_header_widget(self.k_combo)

        # -- what to scan ---------------------------------------------------------------------
        # Two columns of label + field, three rows: narrow enough for the centre place at
        # 1000 px; below its minimum the dock scrolls (BaseDock).
        grid = QGridLayout()
        grid.setHorizontalSpacing(4)
        grid.setVerticalSpacing(2)
        self.images_edit = self._path_row(grid, 0, 0, "Images", "folder of images (recursive)")
        self.masks_edit = self._path_row(grid, 0, 2, "Masks", "optional: masks, same paths")
        self.out_edit = self._path_row(grid, 1, 0, "Output", "default: next to the folder")
        self.images_button.clicked.connect(self.choose_images)
        self.masks_button.clicked.connect(self.choose_masks)
        self.output_button.clicked.connect(self.choose_output)
        self.images_edit.setToolTip(
            "Every image below this folder; sub-folders named after the model's classes "
            "(ImageFolder layout) are the labels"
        )
        self.masks_edit.setToolTip(
            "Object masks at the same relative paths (pixel > 127 = object): gives bg_mass, "
            "the share of the map outside the object"
        )
        self.out_edit.setToolTip(
            "Where results.parquet, maps.npy, clusters.json and report.html go; empty: next "
            "to the image folder"
        )
        self.layer_combo = QComboBox(self)
        self.layer_combo.setEditable(True)
        self.layer_combo.setMinimumContentsLength(6)
        self.layer_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.layer_combo.setToolTip("CAM layer (default: the model's default CAM layer)")
        self.method_combo = QComboBox(self)
        self.method_combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.method_combo.setMinimumContentsLength(6)
        self.method_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.method_combo.addItems(explainers.names(explainers.CAM))
        self.method_combo.setToolTip("CAM method (perturbation methods run image by image)")
        self.target_combo = QComboBox(self)
        self.target_combo.setEditable(True)
        self.target_combo.setMinimumContentsLength(4)
        self.target_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.target_combo.setToolTip(
            "pred: explain each image's prediction; label: its folder's class; or one class "
            "(name or index) for every image"
        )
        self.size_spin = QSpinBox(self)
        self.size_spin.setRange(4, 512)
        self.size_spin.setValue(64)
        self.size_spin.setToolTip("Side of the stored maps (maps.npy)")
        grid.addWidget(QLabel("Layer", self), 1, 2)
        grid.addWidget(self.layer_combo, 1, 3)
        grid.addWidget(QLabel("Method", self), 2, 0)
        grid.addWidget(self.method_combo, 2, 1)
        grid.addWidget(QLabel("Target", self), 2, 2)
        last = QHBoxLayout()
        last.setSpacing(4)
        last.addWidget(self.target_combo, 1)
        last.addWidget(QLabel("Map", self))
        last.addWidget(self.size_spin)
        grid.addLayout(last, 2, 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.body.addLayout(grid)

        status_row = QHBoxLayout()
        self.status = WrapLabel("Choose a folder of images and press Run, or open a scan.", self)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setMaximumWidth(160)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.setVisible(False)
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.progress_bar)
        self.body.addLayout(status_row)

        # -- filters --------------------------------------------------------------------------
        filters = QHBoxLayout()
        filters.setSpacing(4)
        self.cluster_combo = self._filter_combo("Cluster: the scatter shows it, the gallery too")
        self.label_combo = self._filter_combo("Label (from the folder layout)")
        self.pred_combo = self._filter_combo("Prediction")
        self.correct_combo = self._filter_combo("Right or wrong (needs labels)")
        for text, value in CORRECTNESS:
            self.correct_combo.addItem(text, value)
        for w in (self.cluster_combo, self.label_combo, self.pred_combo, self.correct_combo):
            filters.addWidget(w, 1)
        self.count_label = QLabel("", self)
        filters.addWidget(self.count_label)
        self.body.addLayout(filters)
        self._fill_filters()

        # -- scatter | cluster; gallery below -------------------------------------------------
        split = QSplitter(Qt.Orientation.Vertical, self)
        top = QSplitter(Qt.Orientation.Horizontal, split)
        plot_box = self.plot_box = QWidget(top)
        pbox = QVBoxLayout(plot_box)
        pbox.setContentsMargins(0, 0, 0, 0)
        pbox.setSpacing(1)
        self.plot = pg.PlotWidget(plot_box, background=BACKGROUND)
        self.plot.setMenuEnabled(False)
        self.plot.setMinimumSize(180, 150)
        self.plot.getPlotItem().hideButtons()
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setTextPen(TEXT)
            self.plot.getAxis(axis).setStyle(showValues=False)
        # The legend sits under the plot, not over it: a legend box inside hides points.
        self.legend = QLabel("", plot_box)
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.legend.setToolTip("Click a cluster to see its mean map and images")
        self.legend.linkActivated.connect(lambda cid: self.pick_cluster(int(cid)))
        pbox.addWidget(self.plot, 1)
        pbox.addWidget(self.legend)
        self.scatter_items: list[pg.ScatterPlotItem] = []
        self._shown = np.zeros(0, np.int64)  # rows placed in the scatter
        self.plot.scene().sigMouseClicked.connect(self._on_plot_click)
        self.marker = pg.ScatterPlotItem(
            size=16, brush=None, pen=pg.mkPen((0, 0, 0), width=2), symbol="o"
        )
        self.marker.setZValue(10)
        self.hint = pg.TextItem("", color=TEXT, anchor=(0.5, 0.5))
        self.hint.setPos(0, 0)
        self.plot.addItem(self.hint)
        cluster_box = QWidget(top)
        cbox = QVBoxLayout(cluster_box)
        cbox.setContentsMargins(0, 0, 0, 0)
        cbox.setSpacing(2)
        self.mean_pane = ImagePane("Mean map", cluster_box, colorbar=True)
        self.mean_pane.setMinimumSize(140, 140)
        self.composition = QLabel("", cluster_box)
        self.composition.setWordWrap(True)
        self.composition.setTextFormat(Qt.TextFormat.RichText)
        self.composition.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.composition.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.concept_list = QListWidget(cluster_box)
        self.concept_list.setIconSize(QSize(PATCHES * (PATCH + 3) - 3, PATCH))
        self.concept_list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.concept_list.setToolTip(
            "The cluster's concepts, highest mean importance first, with their top patches"
        )
        self.concept_list.setVisible(False)
        cbox.addWidget(self.mean_pane, 3)
        cbox.addWidget(self.composition, 2)
        cbox.addWidget(self.concept_list, 3)
        top.addWidget(plot_box)
        top.addWidget(cluster_box)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        top.setSizes([600, 400])  # the scatter gets the larger share, whatever the hints say
        self.gallery = QListWidget(split)
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(THUMB, THUMB))
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.setUniformItemSizes(True)
        self.gallery.setGridSize(QSize(THUMB + 12, THUMB + 22))
        self.gallery.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.gallery.setMinimumHeight(THUMB + 30)
        self.gallery.setToolTip(
            "The selected cluster's images with their maps; click one to open it"
        )
        self.gallery.itemClicked.connect(self._on_thumb)
        split.addWidget(top)
        split.addWidget(self.gallery)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.body.addWidget(split, 1)

        self.job = ScanJob(
            state,
            "scan",
            self.run_button,
            self.cancel_button,
            self.status,
            bar=self.progress_bar,
            on_cancelled=self._on_cancelled,
            on_failed=self._on_failed,
        )
        self.atlas_job = DockJob(state, "atlas", self.atlas_button, self.cancel_button, self.status)
        self.concepts_job = DockJob(
            state, "concepts", self.concepts_button, self.cancel_button, self.status
        )
        self._concepts = None  # core.io.concept_outputs.ConceptSet of the scan on screen
        self._concept_ranks: dict = {}  # cluster id -> its ranked ClusterConcept
        self._strips: dict[int, np.ndarray | None] = {}
        state.modelChanged.connect(self._fill_model_choices)
        state.modelChanged.connect(self._on_model_changed)
        state.layersChanged.connect(lambda _: self._fill_layers())
        state.camChanged.connect(self._fill_layers)
        state.imageChanged.connect(self._on_image)
        state.displayChanged.connect(self._on_display)
        self._fill_model_choices()
        self._draw_scatter()

    # -- widgets ------------------------------------------------------------------------------
    def _path_row(self, grid: QGridLayout, row: int, col: int, text: str, hint: str) -> QLineEdit:
        edit = QLineEdit(self)
        edit.setPlaceholderText(hint)
        edit.setMinimumWidth(60)
        button = QToolButton(self)
        button.setText("…")
        button.setToolTip(f"Choose the {text.lower()} folder")
        setattr(self, f"{text.lower()}_button", button)
        field = QHBoxLayout()
        field.setSpacing(2)
        field.addWidget(edit, 1)
        field.addWidget(button)
        grid.addWidget(QLabel(text, self), row, col)
        grid.addLayout(field, row, col + 1)
        return edit

    def _filter_combo(self, tip: str) -> QComboBox:
        combo = QComboBox(self)
        combo.setToolTip(tip)
        combo.setMinimumContentsLength(3)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.currentIndexChanged.connect(lambda _: self._on_filter())
        return combo

    def _fill_model_choices(self) -> None:
        self._fill_layers(reset=True)
        names = list((self.state.loaded.class_names if self.state.loaded else None) or [])
        with QSignalBlocker(self.target_combo):
            text = self.target_combo.currentText() or "pred"
            self.target_combo.clear()
            self.target_combo.addItems(["pred", "label", *names])
            keep = text if text in ("pred", "label") or text in names else "pred"
            self.target_combo.setCurrentText(keep)

    def _fill_layers(self, reset: bool = False) -> None:
        st = self.state
        default = (st.cam_layers or [""])[0]
        items = list(dict.fromkeys([*st.cam_layers, *reversed(st.layers)]))
        with QSignalBlocker(self.layer_combo):
            text = self.layer_combo.currentText()
            self.layer_combo.clear()
            self.layer_combo.addItems(items)
            self.layer_combo.setCurrentText(default if reset or not text else text)

    # -- choosing folders ---------------------------------------------------------------------
    def _choose_dir(self, caption: str) -> str:
        path = QFileDialog.getExistingDirectory(self, caption, filedialogs.last_dir())
        if path:
            filedialogs.remember(path)
        return path

    def choose_images(self) -> None:
        path = self._choose_dir("Folder of images to scan")
        if path:
            self.set_images(path)

    def set_images(self, images: str | Path, masks: str | Path | None = None) -> None:
        """Scan ``images`` next (a ``masks`` sibling folder is picked up when there is one)."""
        self.images_edit.setText(str(images))
        if masks is None:
            sibling = Path(images).parent / "masks"
            masks = sibling if sibling.is_dir() and sibling != Path(images) else None
        self.masks_edit.setText(str(masks) if masks else "")
        self.out_edit.clear()
        if not self.job.running:
            with_masks = f" with the masks in {masks}" if masks else " (no masks)"
            self.status.setText(f"Run scans {images}{with_masks}.")

    def choose_masks(self) -> None:
        path = self._choose_dir("Folder of object masks (same relative paths)")
        if path:
            self.masks_edit.setText(path)

    def choose_output(self) -> None:
        path = filedialogs.new_or_existing_dir(
            self, "Scan output folder (created if new)", "hookscope-scan"
        )
        if path:
            self.out_edit.setText(path)

    # -- running ------------------------------------------------------------------------------
    def run(self) -> int | None:
        """Start the scan with the dock's choices; None (and a sentence) when one is missing."""
        st = self.state
        images = self.images_edit.text().strip()
        layer = self.layer_combo.currentText().strip()
        if st.loaded is None:
            return self._say("Load a model first (File ▸ Open model…).")
        if not images:
            return self._say("Choose the folder of images to scan (Images …).")
        if not Path(images).expanduser().is_dir():
            return self._say(f"{images} is not a folder; choose the folder of images to scan.")
        if not layer:
            return self._say("Name the CAM layer to scan (tick one in the model tree).")
        method = self.method_combo.currentText()
        try:
            settings = self.scan_settings()
            resolved = settings.resolve(st.loaded)
        except HookScopeError as exc:
            return self._say(str(exc))
        if settings.out is None:  # next to the folder; a scan of other settings gets its own
            settings = settings.replace(out=str(default_out(resolved.images, resolved.key())))
        self._out = Path(settings.out)
        self.live = LiveScan(resolved, self._out, st.loaded.name)
        self._scan_model = st.loaded  # its rows are stale if the model changes meanwhile
        # The old scan leaves the view now, not when the first new rows land.
        self._before_run = self.scan
        self.clear_scan("Scanning…\nthe points appear as the rows land.")
        return self.job.submit(
            scan_job,
            st.loaded,
            settings,
            colormap=st.colormap,
            cluster_colors=list(CLUSTER_COLORS) * 10,
            status=f"Scanning {images} with {method} on {layer} into {settings.out}…",
            on_result=self._on_done,
            on_partial=self._on_chunk,
        )

    def build_atlas(self) -> int | None:
        """Start the channel atlas (``core.jobs.atlas``) of the selected layer (else the scan's
        layer) over the folder, in the long lane; None (and a sentence) when one is missing."""
        from hookscope.core.jobs.atlas import AtlasSettings, atlas_job

        st = self.state
        images = self.images_edit.text().strip()
        layer = st.selected_layer or self.layer_combo.currentText().strip()
        if st.loaded is None or not images or not Path(images).expanduser().is_dir():
            return self._say("Load a model and choose the folder of images first.")
        out = Path(images).expanduser().resolve()
        out = out.parent / f"{out.name}-atlas-{layer}"
        try:
            settings = AtlasSettings(
                images,
                layer,
                out=str(out),
                workers=self.workers,
                spec=st.input_spec,
                model_spec=st.model_args.get("spec"),
                batch_size=self.batch_size or 16,
            )
        except HookScopeError as exc:
            return self._say(str(exc))
        return self.atlas_job.submit(
            atlas_job,
            st.loaded,
            settings,
            status=f"Building the atlas of {layer} over {images} into {out}…",
            on_result=lambda s: self._on_atlas(s, layer, settings.top),
        )

    def _on_atlas(self, summary, layer: str, top: int) -> None:
        recent_atlases.remember(summary.out)  # the Activations panel finds it after a restart
        self._say(
            f"Atlas of {layer}: {summary.channels} channels × top {top} over "
            f"{summary.images} images in {summary.out}; select a channel in the Activations panel."
        )

    def find_concepts(self) -> int | None:
        """Find the NMF concepts of the scan on screen (``core.jobs.concept_view``) in the long
        lane; None (and a sentence) without a finished scan or a model."""
        st, scan = self.state, self.scan
        if st.loaded is None or scan is None or isinstance(scan, LiveScan) or not scan.complete:
            return self._say("Open or finish a scan first: concepts are found over its images.")
        folder, k = scan.folder, self.k_combo.currentText()
        return self.concepts_job.submit(
            find_concepts_job,
            st.loaded,
            folder,
            k,
            colormap=st.colormap,
            cluster_colors=list(CLUSTER_COLORS) * 10,
            status=f"Finding {k} concepts of {scan.settings['identity']['layer']}…",
            on_result=lambda s: self._on_concepts(s, folder),
        )

    def _on_concepts(self, summary, folder: Path) -> None:
        self.open_folder(folder)
        self.status.setText(
            f"{summary.k} concepts over {summary.images} images in {folder.name}/concepts.json; "
            "each cluster lists its concepts, the CAM panel shows them for the current image."
        )

    def _load_concepts(self, scan) -> None:
        """Read the concepts of ``scan`` (none for a live scan) and tell the app about them."""
        self._concepts, self._concept_ranks, self._strips = None, {}, {}
        if isinstance(scan, LiveScan):
            return
        try:
            self._concepts = read_concepts(scan.folder)
            self._concept_ranks = cluster_concepts(scan) if self._concepts else {}
        except HookScopeError as exc:
            self.state.errorRaised.emit(str(exc))
            return
        loaded = self.state.loaded
        if self._concepts is not None and loaded is not None:
            if remember_concepts(loaded.model, scan.folder) is not None:
                self.state.conceptsChanged.emit(self._concepts.layer)

    def concept_rows(self, cid: int | None) -> list[str]:
        """The concept list's lines for cluster ``cid`` (what the dock shows)."""
        ranked = self._concept_ranks.get(cid, ()) if cid is not None else ()
        rows = []
        for rc in ranked:
            share = "share unknown"
            if rc.share is not None:  # a tiny negative share is 0%, not -0%
                share = f"{rc.share:.0%} of score".replace("-0%", "0%")
            rows.append(f"concept {rc.id}\n{share}\nimp. {rc.importance:.3g}")
        return rows

    def _fill_concepts(self, cid: int | None) -> None:
        self.concept_list.clear()
        ranked = self._concept_ranks.get(cid, ()) if cid is not None else ()
        cs = self._concepts
        self.concept_list.setVisible(bool(ranked) and cs is not None)
        for rc, text in zip(ranked, self.concept_rows(cid)):
            if not 0 <= rc.id < len(cs):
                continue
            if rc.id not in self._strips:
                self._strips[rc.id] = concept_strip(cs, rc.id, PATCHES, PATCH)
            strip = self._strips[rc.id]
            icon = QIcon(rgb_to_pixmap(strip)) if strip is not None else QIcon()
            item = QListWidgetItem(icon, text)
            item.setToolTip("\n".join(f"{p.path} {list(p.box)}" for p in cs.patches[rc.id][:4]))
            self.concept_list.addItem(item)

    def scan_settings(self) -> ScanSettings:
        """The dock's choices as :class:`~core.jobs.scan.ScanSettings` (a bad one raises
        ``HookScopeError`` with one sentence)."""
        st = self.state
        batch = self.batch_size
        if batch is None:  # short batches: a click waits at most for the one in flight
            batch = app_batch_size(st.tree.macs() if st.tree is not None else 0)
        return ScanSettings(
            self.images_edit.text().strip(),
            self.layer_combo.currentText().strip(),
            method=self.method_combo.currentText(),
            target=self.target_combo.currentText().strip() or "pred",
            masks=self.masks_edit.text().strip() or None,
            out=self.out_edit.text().strip() or None,
            map_size=self.size_spin.value(),
            batch_size=batch,
            workers=self.workers,
            model_spec=st.model_args.get("spec"),
            spec=st.input_spec,
        )

    def set_scan_settings(self, settings: ScanSettings | dict) -> None:
        """Fill the dock's choices from a ``ScanSettings`` (or its ``to_dict``, e.g. a session)."""
        if isinstance(settings, dict):
            settings = ScanSettings.from_dict(settings)
        self.images_edit.setText(settings.images)
        self.masks_edit.setText(settings.masks or "")
        self.out_edit.setText(settings.out or "")
        self.layer_combo.setCurrentText(settings.layer)
        self.method_combo.setCurrentText(settings.method)
        target = settings.target
        names = (self.state.loaded.class_names if self.state.loaded else None) or []
        if isinstance(target, int) and 0 <= target < len(names):
            target = names[target]
        self.target_combo.setCurrentText(str(target))
        self.size_spin.setValue(settings.map_size)

    def _on_chunk(self, chunk) -> None:
        """A batch of rows landed: gather it; draw at most every ``LIVE_MS``."""
        if self.live is None:
            return
        self.live.add(chunk)
        if not self._live_timer.isActive():
            self._live_timer.start()

    def _show_live(self) -> None:
        if self.live is not None and self.job.running and len(self.live):
            self.show_scan(self.live)

    def _say(self, text: str) -> None:
        self.status.setText(text)
        return None

    def _on_done(self, summary) -> None:
        self.live = None
        if self._scan_model is not self.state.loaded:  # made with the model before this one
            self.status.setText(
                f"The previous model's scan finished in {summary.out}; Open… shows it."
            )
            return
        self.open_folder(summary.out)
        rate = f" at {summary.images_per_s:.1f} images/s" if summary.computed else ""
        self.status.setText(
            f"Scanned {summary.counts()}"
            f"{rate} in {summary.seconds:.1f} s; {summary.clusters} clusters, written to "
            f"{summary.out.name} (the Output folder)."
            + "".join(f" {note}" for note in summary.notes)
        )

    def _on_failed(self) -> None:
        """The scan stopped on an error (the status line says it): no "Scanning…" left behind.
        One refused before its first row (e.g. the folder holds other settings) puts back the
        scan that was on screen, which is still true."""
        rows, self.live = len(self.live or ()), None
        before, self._before_run = self._before_run, None
        if not rows and before is not None and self._scan_model is self.state.loaded:
            self.show_scan(before)
        else:
            self.clear_scan("The scan stopped:\nthe line above says why.")

    def _on_cancelled(self) -> None:
        self.live = None
        out = self._out
        if self._scan_model is not self.state.loaded:  # the view moved on to another model
            self.status.setText(f"The scan made with the previous model stopped; {out} keeps it.")
            return
        try:
            if out is None:
                raise HookScopeError("no folder")
            scan = open_scan(out)
            self.show_scan(scan)
        except HookScopeError:
            self.status.setText("Cancelled before any image was scanned.")
            return
        if scan.complete:  # the cancel came after the last image: the finished state wins
            self.status.setText(f"Finished before the cancel took effect: {self.describe()}")
            return
        self.status.setText(
            f"Cancelled: the {len(self.scan)} images scanned so far are in {out}; Run resumes "
            "the scan."
        )

    # -- opening ------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path = self._choose_dir("Open a scan folder (holds results.parquet and scan.json)")
        if path:
            self.open_folder(path)

    def open_folder(self, folder: str | Path) -> bool:
        """Show the scan in ``folder`` (finished or partial); a sentence in the status if none."""
        try:
            scan = open_scan(folder)
        except HookScopeError as exc:
            self.status.setText(str(exc))
            self.state.errorRaised.emit(str(exc))
            return False
        self.show_scan(scan)
        ident = scan.settings.get("identity", {})
        self.images_edit.setText(str(ident.get("images") or ""))
        self.masks_edit.setText(str(ident.get("masks") or ""))
        self.out_edit.setText(str(scan.folder))
        if ident.get("layer"):
            self.layer_combo.setCurrentText(str(ident["layer"]))
        if ident.get("method") in explainers.names(explainers.CAM):
            self.method_combo.setCurrentText(ident["method"])
        if ident.get("target") is not None:
            target = ident["target"]
            names = scan.settings.get("class_names") or []
            if isinstance(target, int) and 0 <= target < len(names):
                target = names[target]
            self.target_combo.setCurrentText(str(target))
        if ident.get("map_size"):
            self.size_spin.setValue(int(ident["map_size"]))
        self.status.setText(self.describe())
        return True

    def describe(self) -> str:
        """One sentence about the scan on screen."""
        scan = self.scan
        if scan is None:
            return ""
        ident = scan.settings.get("identity", {})
        made = (
            f"{ident.get('model_name') or ident.get('model')}, {ident.get('method')} on "
            f"{ident.get('layer')}"
        )
        if not scan.complete:
            return (
                f"Partial scan ({made}): {len(scan)} images so far, not clustered yet; Run "
                "resumes it."
            )
        how = {"tsne": "t-SNE", "umap": "UMAP"}.get(scan.settings.get("embedding"), "embedding")
        return (
            f"{len(scan)} images, {len(scan.clusters)} clusters ({made}; {how}). Click a point "
            "or a thumbnail to open that image."
        )

    def show_scan(self, scan) -> None:
        """Put ``scan`` (a :class:`~core.io.scan_outputs.ScanOutputs`, or the running scan's
        :class:`~core.jobs.scan.LiveScan` again as it grows) on screen."""
        growing = scan is self.scan
        self.scan = scan
        if not growing:
            self._thumbs = {}
            self._picked = None
            self._rows_by_path, self._indexed = {}, 0
        self._cols = {
            k: scan.column(k) for k in ("cluster", "x", "y", "label", "pred", "correct", "error")
        }
        self._cols["prob"] = scan.column("prob")
        self._cols["bg_mass"] = scan.column("bg_mass")
        self._cols["path"] = scan.column("path")
        root = scan.images_root.resolve()  # once: resolving 100k paths one by one is slow
        paths = self._cols["path"]
        for k in range(self._indexed, len(paths)):  # only the rows that are new
            self._rows_by_path[os.path.normcase(str(root / paths[k]))] = k
        self._indexed = len(paths)
        live = isinstance(scan, LiveScan)
        self.report_button.setEnabled(not live and (scan.folder / REPORT_FILE).is_file())
        how = {"tsne": "t-SNE", "umap": "UMAP"}.get(scan.settings.get("embedding"), "")
        how = "preview" if live else how
        for axis, n in (("bottom", 1), ("left", 2)):
            self.plot.setLabel(axis, f"{how} {n}".strip() if how else "", color=TEXT)
        if not growing:
            self._load_concepts(scan)
        self._fill_filters()
        self._on_image()
        self.refresh()

    def clear_scan(self, hint: str = "No scan yet: Run one,\nor open a scan folder.") -> None:
        """Take the scan off screen the moment it stops being true (a new scan starts, the
        model changes): no old points, gallery or filters stay behind."""
        self.scan = None
        self.mean_pane.set_title("Mean map")
        for axis in ("bottom", "left"):
            self.plot.setLabel(axis, "", color=TEXT)
        self._thumbs, self._picked, self._current = {}, None, None
        self._rows_by_path, self._indexed = {}, 0
        self.report_button.setEnabled(False)
        self._fill_filters()
        self.refresh()
        self._say_in_plot(hint)

    def _on_model_changed(self) -> None:
        """Another model: the scan on screen (or running) was made with the old one."""
        if self.scan is None and self.live is None:
            return
        folder = self._out if self.live is not None else getattr(self.scan, "folder", None)
        self.live = None  # rows still streaming from the old model's scan are not shown
        self.clear_scan("The model changed:\nRun scans with this one.")
        if folder is not None and self.out_edit.text().strip() == str(folder):
            self.out_edit.clear()  # that folder holds the old model's scan: Run gets a new one
        self.status.setText(
            f"The model changed, so the scan made with the previous one left the view; its "
            f"folder {folder} is kept (Open… shows it again)."
        )

    def _fill_filters(self) -> None:
        scan = self.scan
        c = self._cols if scan is not None else {"label": [], "pred": [], "correct": []}
        sizes = {info.id: info.size for info in scan.clusters} if scan is not None else {}
        values = {
            self.cluster_combo: [
                (f"Cluster {cid} ({sizes.get(cid, 0)})", cid) for cid in sorted(sizes)
            ],
            self.label_combo: [(str(v), v) for v in _distinct(c["label"])],
            self.pred_combo: [(str(v), v) for v in _distinct(c["pred"])],
        }
        heads = {
            self.cluster_combo: "All clusters",
            self.label_combo: "All labels",
            self.pred_combo: "All predictions",
        }
        for combo, items in values.items():
            with QSignalBlocker(combo):
                keep = combo.currentData()  # a growing scan refills: the choice stays
                combo.clear()
                combo.addItem(heads[combo], ALL)
                for text, value in items:
                    if combo is self.cluster_combo:
                        combo.addItem(_dot_icon(cluster_color(value)), text, value)
                    else:
                        combo.addItem(text, value)
                combo.setCurrentIndex(max(0, combo.findData(keep)))
                combo.setEnabled(bool(items))
        with QSignalBlocker(self.correct_combo):
            if not isinstance(scan, LiveScan):
                self.correct_combo.setCurrentIndex(0)
            self.correct_combo.setEnabled(any(v is not None for v in c["correct"]))

    # -- filters and selection ----------------------------------------------------------------
    def set_filters(self, cluster=ALL, label=ALL, pred=ALL, correct=ALL) -> None:
        """Set every filter at once (None = all)."""
        for combo, value in (
            (self.cluster_combo, cluster),
            (self.label_combo, label),
            (self.pred_combo, pred),
            (self.correct_combo, correct),
        ):
            with QSignalBlocker(combo):
                i = combo.findData(value)
                combo.setCurrentIndex(max(0, i))
        self._on_filter()

    def filtered_rows(self, *, cluster: bool = True) -> np.ndarray:
        """Rows passing the filters (and with a place in the embedding), in table order."""
        if self.scan is None:
            return np.zeros(0, np.int64)
        c = self._cols
        keep = np.asarray([e is None for e in c["error"]], bool)
        for combo, col in ((self.label_combo, "label"), (self.pred_combo, "pred")):
            value = combo.currentData()
            if value is not None:
                keep &= np.asarray([v == value for v in c[col]], bool)
        right = self.correct_combo.currentData()
        if right is not None:
            keep &= np.asarray([v is right for v in c["correct"]], bool)
        cid = self.cluster_combo.currentData()
        if cluster and cid is not None:
            keep &= c["cluster"] == cid
        return np.flatnonzero(keep)

    def selected_cluster(self) -> int | None:
        """The cluster the gallery and mean map show: the filter's, else the last clicked one,
        else the largest; -1 for a partial scan (not clustered yet)."""
        if self.scan is None:
            return None
        cid = self.cluster_combo.currentData()
        if cid is not None:
            return int(cid)
        if self._picked is not None:
            return self._picked
        return self.scan.clusters[0].id if self.scan.clusters else -1

    def gallery_rows(self) -> np.ndarray:
        """The selected cluster's rows passing the other filters, its most typical first."""
        cid = self.selected_cluster()
        if cid is None:
            return np.zeros(0, np.int64)
        rows = self.filtered_rows(cluster=False)
        rows = rows[self._cols["cluster"][rows] == cid]
        info = next((i for i in self.scan.clusters if i.id == cid), None)
        if info is not None and info.examples:
            rank = {p: k for k, p in enumerate(info.examples)}
            paths = self._cols["path"]
            rows = np.asarray(
                sorted(rows.tolist(), key=lambda r: (rank.get(paths[r], len(rank)), r)), np.int64
            )
        return rows

    def _on_filter(self) -> None:
        if self.scan is not None:
            self.refresh()

    def pick_cluster(self, cid: int) -> None:
        """Show cluster ``cid``'s mean map and gallery (the cluster filter, if set, follows)."""
        if self.cluster_combo.currentData() is not None:
            self.set_filters(
                cid,
                self.label_combo.currentData(),
                self.pred_combo.currentData(),
                self.correct_combo.currentData(),
            )
            return
        self._picked = cid
        self._draw_cluster()

    def select_row(self, row: int) -> None:
        """Make table row ``row``'s image the app's current image (and pick its cluster)."""
        if self.scan is None or not 0 <= row < len(self.scan):
            return
        cid = int(self._cols["cluster"][row])
        if self.cluster_combo.currentData() is None and cid != self.selected_cluster():
            self._picked = cid
            self._draw_cluster()
        self.state.load_image(str(self.scan.image_path(row)))

    def _on_plot_click(self, ev) -> None:
        """Open the image of the point nearest the click (within ``PICK_PX`` screen pixels)."""
        rows = self._shown
        vb = self.plot.getPlotItem().getViewBox()
        if ev.button() != Qt.MouseButton.LeftButton or not len(rows):
            return
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        t = vb.childGroup.sceneTransform()
        x, y = self._cols["x"][rows].astype(np.float64), self._cols["y"][rows].astype(np.float64)
        sx = t.m11() * x + t.m21() * y + t.dx()
        sy = t.m12() * x + t.m22() * y + t.dy()
        p = ev.scenePos()
        d2 = (sx - p.x()) ** 2 + (sy - p.y()) ** 2
        k = int(np.argmin(d2))
        if d2[k] <= PICK_PX**2:
            ev.accept()
            self.select_row(int(rows[k]))

    def _on_thumb(self, item: QListWidgetItem) -> None:
        self.select_row(int(item.data(Qt.ItemDataRole.UserRole)))

    def _on_image(self) -> None:
        path = self.state.image_path
        row = None
        if path and self._rows_by_path:
            row = self._rows_by_path.get(os.path.normcase(str(Path(path).resolve())))
        self._current = row
        self._draw_marker()

    def _on_display(self) -> None:
        self._thumbs = {}
        if self.scan is not None:
            self._draw_cluster()

    # -- drawing ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw the scatter, the cluster panel and the gallery."""
        self._draw_scatter()
        self._draw_cluster()

    def _draw_scatter(self) -> None:
        for item in self.scatter_items:
            self.plot.removeItem(item)
        self.scatter_items = []
        self.legend.setText("")
        if self.marker.scene() is None:
            self.plot.addItem(self.marker)
        scan = self.scan
        if scan is None:
            self.count_label.setText("")
            self._shown = np.zeros(0, np.int64)
            self._say_in_plot("No scan yet: Run one,\nor open a scan folder.")
            return
        c = self._cols
        passing = self.filtered_rows()
        rows = passing[np.isfinite(c["x"][passing]) & np.isfinite(c["y"][passing])]
        self._shown = rows
        sizes = {info.id: info.size for info in scan.clusters}
        for cid in sorted(set(c["cluster"][rows].tolist())):
            mine = rows[c["cluster"][rows] == cid]
            item = pg.ScatterPlotItem(
                x=c["x"][mine],
                y=c["y"][mine],
                data=mine,
                size=9,
                pen=pg.mkPen((255, 255, 255), width=0.8),
                brush=pg.mkBrush(*cluster_color(cid)),
                hoverable=True,
                hoverSize=12,
                tip=self._tip,
            )
            self.plot.addItem(item)
            self.scatter_items.append(item)
        # Each entry is a link: a click shows that cluster's mean map and gallery.
        self.legend.setText(
            "&nbsp; ".join(
                f"<a href='{cid}' style='color: {TEXT_CSS}; text-decoration: none'>"
                f"<span style='color: rgb{cluster_color(cid)}'>●</span>&nbsp;cluster&nbsp;{cid}"
                f"&nbsp;({sizes.get(cid, 0)})</a>"
                for cid in sorted(sizes)
            )
        )
        self.count_label.setText(f"{len(passing)} of {len(scan)}")
        if isinstance(scan, LiveScan):  # points at a provisional place until SpRAy's embedding
            self._say_in_plot("")
            self.plot.getPlotItem().enableAutoRange()
        elif not scan.complete:
            self._say_in_plot("Not clustered yet:\nRun finishes the scan.")
        elif not len(rows):
            self._say_in_plot("No image passes the filters.")
        else:
            self._say_in_plot("")
            self.plot.getPlotItem().enableAutoRange()
        self._draw_marker()

    def _say_in_plot(self, text: str) -> None:
        """A line of text in the middle of an empty scatter (hidden when ``text`` is empty)."""
        self.hint.setText(text)
        self.hint.setVisible(bool(text))
        if text:
            self.plot.getPlotItem().disableAutoRange()
            self.plot.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)

    def _tip(self, x, y, data) -> str:
        k = int(data)
        c = self._cols
        text = f"{c['path'][k]}\npred {c['pred'][k]} ({c['prob'][k]:.2f})"
        if c["label"][k] is not None:
            text += f", label {c['label'][k]}"
        if np.isfinite(c["bg_mass"][k]):
            text += f"\nbg_mass {c['bg_mass'][k]:.2f}"
        return text + f"\ncluster {c['cluster'][k]}"

    def _draw_marker(self) -> None:
        k = self._current
        if self.scan is None or k is None or not np.isfinite(self._cols["x"][k]):
            self.marker.setData([], [])
            return
        self.marker.setData([float(self._cols["x"][k])], [float(self._cols["y"][k])])

    def _draw_cluster(self) -> None:
        scan = self.scan
        cid = self.selected_cluster()
        if scan is None or cid is None:
            self.mean_pane.set_rgb(None)
            self.composition.setText("")
            self.gallery.clear()
            self._fill_concepts(None)
            return
        cmap = self.state.colormap
        mean = self.mean_map(cid)
        title = "Not clustered yet: mean map" if cid < 0 else f"Cluster {cid}: mean map"
        self.mean_pane.set_title(title)
        if mean is None:
            self.mean_pane.set_rgb(None)
        else:
            self.mean_pane.set_values(mean, cmap, (0.0, 1.0))
        self.composition.setText(self._composition_html(cid))
        self._fill_concepts(cid)
        self._fill_gallery()

    def mean_map(self, cid: int) -> np.ndarray | None:
        """Mean map of cluster ``cid`` (of every row for -1), or None when it is empty."""
        scan = self.scan
        rows = scan.rows_of(cid)
        if cid < 0:
            rows = rows[np.asarray([e is None for e in self._cols["error"][rows]], bool)]
        if not len(rows):
            return None
        if cid >= 0 or isinstance(scan, LiveScan):  # a live scan keeps its running mean
            return scan.mean_map(cid)
        return np.mean([scan.map(k) for k in rows], axis=0)

    def _composition_html(self, cid: int) -> str:
        info = next((i for i in self.scan.clusters if i.id == cid), None)
        if info is None:
            rows = self.scan.rows_of(cid)
            return f"{len(rows)} images scanned so far; clusters come when the scan finishes."
        r, g, b = cluster_color(cid)
        parts = [
            f"<b style='color: rgb({r},{g},{b})'>●</b> <b>Cluster {cid}</b>: {info.size} images "
            f"({info.share:.0%})"
        ]
        if info.mean_bg_mass is not None:
            warn = " style='color:#b00020'" if info.mean_bg_mass >= 0.7 else ""
            parts.append(f"mean bg_mass <b{warn}>{info.mean_bg_mass:.2f}</b>")
        if info.accuracy is not None:
            parts.append(f"accuracy {info.accuracy:.0%}")
        html = ", ".join(parts)
        for name, counts in (("labels", info.labels), ("predictions", info.preds)):
            if counts:
                html += f"<br>{name}: " + ", ".join(f"{_esc(k)} {v}" for k, v in counts.items())
        top = (self._concept_ranks.get(cid) or (None,))[0]
        if top is not None and top.share is not None:
            html += (
                f"<br><b>concept {top.id}</b> carries <b>{top.share:.0%}</b> of the explained "
                "score (its top patches below)"
            )
        return html

    def thumbnail(self, row: int) -> np.ndarray:
        """Row ``row``'s image as the model saw it with its map over it (uint8 RGB)."""
        if row not in self._thumbs:
            rgb = self.scan.input_image(row, side=THUMB)
            if rgb is None:
                rgb = np.full((THUMB, THUMB, 3), 200, np.uint8)
            st = self.state
            self._thumbs[row] = figures.overlay(rgb, self.scan.map(row), st.colormap, st.alpha)
        return self._thumbs[row]

    def _fill_gallery(self) -> None:
        self.gallery.clear()
        rows = self.gallery_rows()
        c = self._cols
        for k in rows[:GALLERY_MAX].tolist():
            wrong = c["correct"][k] is False
            item = QListWidgetItem(QIcon(rgb_to_pixmap(self.thumbnail(k))), "")
            item.setText(f"{'✗ ' if wrong else ''}{c['pred'][k]} {c['prob'][k]:.2f}")
            if wrong:
                item.setForeground(QBrush(QColor(176, 0, 32)))
            item.setToolTip(self._tip(0, 0, k))
            item.setData(Qt.ItemDataRole.UserRole, int(k))
            self.gallery.addItem(item)
        if len(rows) > GALLERY_MAX:
            self.count_label.setText(
                f"{self.count_label.text()} · gallery {GALLERY_MAX} of {len(rows)}"
            )

    def open_report(self) -> None:
        if self.scan is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.scan.folder / REPORT_FILE)))

    # -- figures ------------------------------------------------------------------------------
    def make_panels(self) -> list[Panel]:
        scan = self.scan
        if scan is None:
            return []
        panels: list[Panel] = [("Embedding", qimage_to_rgb(self.plot_box.grab().toImage()))]
        cid = self.selected_cluster()
        mean = self.mean_map(cid) if cid is not None else None
        name = f"Cluster {cid}" if cid is not None and cid >= 0 else "All rows"
        if mean is not None:
            cmap = self.state.colormap
            bar = figures.ColorBar(cmap, 0.0, 1.0)
            panels.append(figures.Panel(f"{name}: mean map", figures.colorize(mean, cmap), bar))
        rows = self.gallery_rows()[:STRIP_MAX].tolist()
        if rows:
            gap = np.full((THUMB, 4, 3), 255, np.uint8)
            strip = [x for k in rows for x in (self.thumbnail(k), gap)][:-1]
            panels.append((f"{name}: examples", np.concatenate(strip, axis=1)))
        return panels

    def make_arrays(self) -> dict[str, np.ndarray]:
        if self.scan is None:
            return {}
        c = self._cols
        out = {"x": c["x"], "y": c["y"], "cluster": c["cluster"]}
        cid = self.selected_cluster()
        mean = self.mean_map(cid) if cid is not None else None
        if mean is not None:
            out["mean_map"] = mean
        return out

    def settings(self) -> dict:
        if self.scan is None:
            return {}
        try:
            options = self.scan_settings().to_dict()  # what Run would scan next
        except HookScopeError:
            options = None
        return {
            "scan_settings": options,
            "scan": str(self.scan.folder),
            "rows": len(self.scan),
            "complete": self.scan.complete,
            "clusters": len(self.scan.clusters),
            "selected_cluster": self.selected_cluster(),
            "filters": {
                "cluster": self.cluster_combo.currentData(),
                "label": self.label_combo.currentData(),
                "pred": self.pred_combo.currentData(),
                "correct": self.correct_combo.currentData(),
            },
        }


def _button(text: str, parent: QWidget) -> QToolButton:
    """A framed tool button: as clear as a push button, without its 80 px minimum width."""
    button = QToolButton(parent)
    button.setText(text)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    return button


def _dot_icon(rgb: tuple[int, int, int], side: int = 12) -> QIcon:
    """A round swatch of ``rgb`` for the cluster filter."""
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    disc = (xx**2 + yy**2) <= (side / 2 - 1) ** 2
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[disc] = (*rgb, 255)
    return QIcon(rgb_to_pixmap(rgba))


def _distinct(values) -> list:
    return sorted({v for v in values if v is not None}, key=str)


def _esc(text) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
