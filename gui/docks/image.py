"""Image dock: pick the input (file, drop, paste, bundled sample) and see what the model sees."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from hookscope.core.demo import sample_paths
from hookscope.core.engine.outputs import DENSE, DETECTIONS
from hookscope.core.loading.images import TensorImage
from hookscope.core.loading.spec import InputSpec
from hookscope.gui import filedialogs
from hookscope.gui.docks.base import BaseDock
from hookscope.gui.qtutil import pil_to_rgb, qimage_to_rgb, rgb_to_pixmap
from hookscope.gui.widgets.flow import FlowLayout
from hookscope.gui.widgets.overlay import PredictionView
from hookscope.gui.widgets.picture import FittedPicture

IMAGE_FILTER = filedialogs.IMAGE_FILTER


class ImageDock(BaseDock):
    """Open / drop / paste / pick a sample; original and model input side by side."""

    TITLE = "Image"
    OBJECT_NAME = "ImageDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.setAcceptDrops(True)

        self.samples = QComboBox(self)
        self.samples.setToolTip("Bundled sample images")
        self.samples.setMinimumContentsLength(12)
        self.samples.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self._fill_samples()
        self.samples.activated.connect(self._on_sample)
        self.add_header_widget(self.samples)
        for text, tip, slot in (
            ("Open…", "Open an image file (Ctrl+I)", self.open_dialog),
            ("Paste", "Use the image on the clipboard", self.paste),
        ):
            btn = QToolButton(self)
            btn.setText(text)
            btn.setToolTip(tip)
            btn.clicked.connect(slot)
            self.add_header_widget(btn)

        views = QHBoxLayout()
        self.original = FittedPicture("Original\n(drop an image here)", self)
        # With the mask or the boxes the model predicted: a click targets the region / box.
        self.model_input = PredictionView("Model input", self)
        self.model_input.clicked.connect(self._on_input_clicked)
        for caption, view in (("Original", self.original), ("Model input", self.model_input)):
            col = QVBoxLayout()
            col.setSpacing(1)
            title = QLabel(caption, self)
            title.setAlignment(Qt.AlignmentFlag.AlignCenter)
            col.addWidget(title)
            col.addWidget(view, 1)
            views.addLayout(col, 1)
        self.body.addLayout(views, 1)
        self.score_row = QWidget(self)  # detections only: which boxes are drawn
        row = FlowLayout(self.score_row)  # wraps in the narrow right column
        self.score_spin = QDoubleSpinBox(self)
        self.score_spin.setRange(0.0, 1.0)
        self.score_spin.setSingleStep(0.05)
        self.score_spin.setValue(self.model_input.score_threshold)
        self.score_spin.setToolTip(
            "Draw the detections scoring at least this (the explained one always)"
        )
        self.score_spin.valueChanged.connect(self._on_score_threshold)
        self.score_count = QLabel("", self)
        row.addWidget(QLabel("Boxes with score ≥", self))
        row.addWidget(self.score_spin)
        row.addWidget(self.score_count, 1)
        self.score_row.setVisible(False)
        self.body.addWidget(self.score_row)

        self.info = QLabel(self)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.body.addWidget(self.info)

        form_box = QWidget(self)
        form = QFormLayout(form_box)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        size_row = QHBoxLayout()
        self.height_box, self.width_box = QSpinBox(self), QSpinBox(self)
        for box in (self.height_box, self.width_box):
            box.setRange(8, 2048)
        size_row.addWidget(self.height_box)
        size_row.addWidget(QLabel("×", self))
        size_row.addWidget(self.width_box)
        size_row.addStretch(1)
        # "Size", not "Size (H × W)": the form must fit the narrow right column.
        form.addRow("Size", size_row)
        self.height_box.setToolTip("Height of the model input (px)")
        self.width_box.setToolTip("Width of the model input (px)")
        self.mean_edit, self.std_edit = QLineEdit(self), QLineEdit(self)
        self.mean_edit.setToolTip("Per-channel mean subtracted after scaling to [0, 1]")
        self.std_edit.setToolTip("Per-channel standard deviation divided by")
        form.addRow("Mean", self.mean_edit)
        form.addRow("Std", self.std_edit)
        buttons = QHBoxLayout()
        self.apply_button = QPushButton("Apply", self)
        self.apply_button.setToolTip("Use this size and normalisation, and rerun")
        self.apply_button.clicked.connect(self.apply_spec)
        self.reset_button = QPushButton("Model default", self)
        self.reset_button.clicked.connect(self.reset_spec)
        buttons.addStretch(1)
        buttons.addWidget(self.reset_button)
        buttons.addWidget(self.apply_button)
        form.addRow(buttons)
        for edit in (self.mean_edit, self.std_edit):
            edit.returnPressed.connect(self.apply_spec)
        for box in (self.height_box, self.width_box):
            box.editingFinished.connect(self.apply_spec)  # no-op when nothing changed
        self.body.addWidget(form_box)

        state.imageChanged.connect(self._on_image)
        state.specChanged.connect(self._on_spec)
        state.modelChanged.connect(self._on_spec)
        state.resultChanged.connect(self._on_result)
        self._on_image()
        self._on_spec()

    # -- input sources ------------------------------------------------------------------------
    def _fill_samples(self) -> None:
        self.samples.clear()
        self.samples.addItem("Samples…", None)
        for p in sample_paths():
            self.samples.addItem(p.stem.replace("_", " "), str(p))
        self.samples.setEnabled(self.samples.count() > 1)

    def _on_sample(self, i: int) -> None:
        path = self.samples.itemData(i)
        if path:
            self.state.load_image(path)

    def open_dialog(self) -> None:
        path = filedialogs.open_file(self, "Open image", IMAGE_FILTER)
        if path:
            self.state.load_image(path)

    def paste(self) -> bool:
        """Use the clipboard's image (or an image file path copied as text / URL)."""
        clip = QGuiApplication.clipboard()
        mime = clip.mimeData()
        if mime is not None and mime.hasUrls():
            local = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if local:
                return self.state.load_image(local[0])
        img: QImage = clip.image()
        if img.isNull():
            self.state.errorRaised.emit(
                "The clipboard holds no image; copy an image or an image file first."
            )
            return False
        self.state.set_image(Image.fromarray(qimage_to_rgb(img)), None)
        return True

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        mime = event.mimeData()
        local = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        if local:
            self.state.load_image(local[0])
        elif mime.hasImage():
            self.state.set_image(Image.fromarray(qimage_to_rgb(QImage(mime.imageData()))), None)
        event.acceptProposedAction()

    # -- input spec ---------------------------------------------------------------------------
    def _on_spec(self) -> None:
        spec: InputSpec | None = self.state.input_spec
        enabled = spec is not None
        for w in (self.height_box, self.width_box, self.mean_edit, self.std_edit):
            w.setEnabled(enabled)
        if spec is None:
            return
        self.height_box.setValue(spec.size[0])
        self.width_box.setValue(spec.size[1])
        self.mean_edit.setText(", ".join(f"{v:g}" for v in spec.mean))
        self.std_edit.setText(", ".join(f"{v:g}" for v in spec.std))
        self._update_info()

    def apply_spec(self) -> bool:
        """Parse the edited size / normalisation and hand it to the state."""
        spec = self.state.input_spec
        if spec is None:
            return False
        try:
            mean = _floats(self.mean_edit.text(), spec.channels, "mean")
            std = _floats(self.std_edit.text(), spec.channels, "std")
        except ValueError as exc:
            self.state.errorRaised.emit(str(exc))
            return False
        if any(s <= 0 for s in std):
            self.state.errorRaised.emit("Every std value must be above zero.")
            return False
        size = (self.height_box.value(), self.width_box.value())
        resize = spec.resize if size == tuple(spec.size) else None
        native = spec.native and size == tuple(spec.size)  # a typed size is a fixed size
        self.state.set_input_spec(
            replace(spec, size=size, mean=mean, std=std, resize=resize, native=native)
        )
        return True

    def reset_spec(self) -> None:
        if self.state.loaded is not None:
            self.state.set_input_spec(self.state.loaded.input_spec)

    # -- views --------------------------------------------------------------------------------
    def _on_image(self) -> None:
        img = self.state.image
        self.original.set_pixmap(rgb_to_pixmap(pil_to_rgb(img)) if img is not None else None)
        self._update_info()

    def _on_result(self, snap) -> None:
        names = self.state.loaded.class_names if self.state.loaded else None
        self.model_input.show_snapshot(snap, names)
        kind = snap.kind.kind if snap.kind is not None else None
        tips = {
            DENSE: "Click a region to explain its class there",
            DETECTIONS: "Click a box to explain that detection",
        }
        self.model_input.setToolTip(tips.get(kind, ""))
        self.score_row.setVisible(kind == DETECTIONS)
        self._count_boxes()

    def _on_score_threshold(self, value: float) -> None:
        self.model_input.set_score_threshold(value)
        self._count_boxes()

    def _count_boxes(self) -> None:
        view = self.model_input
        self.score_count.setText(f"{len(view.boxes)} of {view.detections} drawn")

    def _on_input_clicked(self, row: int, col: int) -> None:
        """A click on the model input: the region (dense) or the box (detections) there."""
        snap = self.state.snapshot
        kind = snap.kind.kind if snap is not None and snap.kind is not None else None
        if kind == DENSE:
            self.state.set_target_region(row, col)
        elif kind == DETECTIONS:
            i = self.model_input.box_at(row, col)
            if i is None:
                self.state.statusMessage.emit("No detection there: click inside a box.")
            else:
                self.state.set_target_text(f"box:{i}")

    def _update_info(self) -> None:
        img, spec = self.state.image, self.state.input_spec
        bits = []
        if img is not None:
            name = Path(self.state.image_path).name if self.state.image_path else "pasted image"
            if isinstance(img, TensorImage):  # hookscope.view(model, image=tensor)
                name = "tensor as given"
            bits.append(f"{name}: {img.width}×{img.height}")
        if spec is not None and spec.native:  # a live module given no input size
            size = f"{img.height}×{img.width}" if img is not None else "its own size"
            bits.append(f"model input {size} (the image's own size, no resize)")
        elif spec is not None:
            how = f"resize {spec.resize}, crop" if spec.resize else "resize + centre crop"
            bits.append(f"model input {spec.size[0]}×{spec.size[1]} ({how})")
        self.info.setText(" → ".join(bits))

    def make_panels(self):
        panels = []
        if self.state.image is not None:
            panels.append(("Original", pil_to_rgb(self.state.image)))
        if self.state.snapshot is not None:
            panels.append(("Model input", self.state.snapshot.input_image))
        return panels


def _floats(text: str, n: int, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError:
        raise ValueError(f"The {what} must be numbers separated by commas.") from None
    if len(vals) == 1:
        vals = vals * n
    if len(vals) != n:
        raise ValueError(f"The {what} needs {n} value(s), one per channel; got {len(vals)}.")
    return vals
