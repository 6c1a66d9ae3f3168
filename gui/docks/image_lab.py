"""Image lab dock: change the input — paste an object, paint it one colour, occlude a box.

The tutorial's shortcut test in three moves: a plain sky-blue image, a car pasted onto sky, a
box over the part the model looks at. Each change is an image edit dict
(``core.experiments.interventions.apply_image_edits``) kept in ``AppState.image_edits`` for
sessions; the edited image becomes the current one, and the predictions before and after
show at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QComboBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hookscope.core.demo import sample_paths
from hookscope.core.errors import HookScopeError
from hookscope.core.experiments.interventions import apply_image_edits, crop_to_mask
from hookscope.core.jobs.experiments import before_after_job
from hookscope.core.loading.images import load_image
from hookscope.gui import filedialogs
from hookscope.gui.docks.base import BaseDock, Panel
from hookscope.gui.qtutil import pil_to_rgb
from hookscope.gui.widgets.flow import FlowLayout
from hookscope.gui.widgets.lab_canvas import LabCanvas
from hookscope.gui.widgets.scroll import make_scrollable

SKY_BLUE = (135, 206, 235)
OCCLUDE_COLOURS = (("grey", (128, 128, 128)), ("black", (0, 0, 0)), ("white", (255, 255, 255)))


def mask_for(path: str | Path) -> Path | None:
    """``car_road.png`` → ``car_road_mask.png`` when that file sits next to it."""
    p = Path(path)
    m = p.with_name(f"{p.stem}_mask{p.suffix}")
    return m if m.is_file() else None


class ImageLabDock(BaseDock):
    """Paste / plain colour / occlude, on a canvas; before → after predictions."""

    TITLE = "Image lab"
    OBJECT_NAME = "ImageLabDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        # -- paste row ----------------------------------------------------------------------
        # Rows that wrap: the lab shares the narrow right column with the Image panel, whose
        # width it must not exceed (QHBoxLayouts made it 290 px wide in a 236-px column).
        paste_row = FlowLayout()
        self.patch_combo = QComboBox(self)
        self.patch_combo.setToolTip("Object to paste: a sample (its mask is used) or a file")
        self.patch_combo.setMinimumContentsLength(10)
        self.patch_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.patch_combo.addItem("Object to paste…", None)
        for p in sample_paths():
            if mask_for(p) is not None and not p.stem.startswith("sky"):
                self.patch_combo.addItem(p.stem.replace("_", " "), str(p))
        self.patch_combo.addItem("File…", "file")
        self.patch_combo.activated.connect(self._on_patch_combo)
        self.scale_box = QSpinBox(self)
        self.scale_box.setRange(10, 400)
        self.scale_box.setValue(100)
        self.scale_box.setSuffix(" %")
        self.scale_box.setToolTip("Size of the pasted object")
        self.scale_box.valueChanged.connect(self._show_patch)
        self.paste_button = QPushButton("Paste here", self)
        self.paste_button.setToolTip("Drag the object on the canvas, then paste it there")
        self.paste_button.clicked.connect(self.apply_paste)
        self.paste_button.setEnabled(False)
        paste_row.addWidget(self.patch_combo, 1)
        paste_row.addWidget(self.scale_box)
        paste_row.addWidget(self.paste_button)
        self.body.addLayout(paste_row)

        # -- colour / occlusion row ---------------------------------------------------------
        tools = FlowLayout()
        self.solid_button = QPushButton("Plain colour…", self)
        self.solid_button.setToolTip("Make the whole image one colour (e.g. sky blue)")
        self.solid_button.clicked.connect(self.pick_solid)
        self.box_button = QPushButton("Draw box", self)
        self.box_button.setCheckable(True)
        self.box_button.setToolTip("Drag a rectangle on the canvas to occlude")
        self.box_button.toggled.connect(self._on_box_mode)
        self.box_colour = QComboBox(self)
        for name, rgb in OCCLUDE_COLOURS:
            self.box_colour.addItem(name, rgb)
        self.occlude_button = QPushButton("Occlude", self)
        self.occlude_button.setEnabled(False)
        self.occlude_button.clicked.connect(self.apply_occlusion)
        self.reset_button = QPushButton("Reset image", self)
        self.reset_button.setToolTip("Back to the opened file, without image edits")
        self.reset_button.clicked.connect(self.reset_image)
        # Two short rows: the lab shares the narrow right column with the Image dock.
        for w in (self.box_button, self.box_colour, self.occlude_button):
            tools.addWidget(w)
        tools.addStretch(1)
        colour_row = FlowLayout()
        colour_row.addWidget(self.solid_button)
        colour_row.addStretch(1)
        colour_row.addWidget(self.reset_button)
        self.body.addLayout(colour_row)
        self.body.addLayout(tools)

        # -- canvas and before / after ------------------------------------------------------
        # Canvas above the table: the lab shares the narrow right column with the Image dock.
        split = QSplitter(Qt.Orientation.Vertical, self)
        self.canvas = LabCanvas(split)
        self.canvas.boxChanged.connect(self._on_box)
        side = QWidget(split)
        side_lay = QVBoxLayout(side)
        side_lay.setContentsMargins(0, 0, 0, 0)
        side_lay.addWidget(QLabel("Prediction before → after the edit", side))
        self.table = QTableWidget(0, 2, side)
        self.table.setHorizontalHeaderLabels(["Before", "After"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(22)
        head_h = self.table.horizontalHeader().sizeHint().height()
        self.table.setFixedHeight(head_h + 22 * 5 + 6)  # the whole top 5, no more
        side_lay.addWidget(self.table, 1)
        self.summary = QLabel("", side)
        self.summary.setWordWrap(True)
        side_lay.addWidget(self.summary)
        split.addWidget(self.canvas)
        split.addWidget(side)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        self.body.addWidget(split, 1)
        self.edits_label = QLabel("", self)
        self.edits_label.setWordWrap(True)
        self.body.addWidget(self.edits_label)

        make_scrollable(self)  # tall form: scroll rather than push the window taller
        self.patch_path: str | None = None
        self.mask_path: str | None = None
        self._crop = None  # (patch crop PIL, mask crop PIL, (left, top) in the patch)
        self._full_size = (0, 0)
        self.result = None  # core.jobs.experiments.BeforeAfterResult
        self._compared: list[dict] = []  # the image edits the table is about
        state.imageChanged.connect(self._on_image)
        state.modelChanged.connect(lambda: self._sync_table(force=True))
        self._on_image()

    # -- image --------------------------------------------------------------------------------
    def _on_image(self) -> None:
        img = self.state.image
        self.canvas.set_base(pil_to_rgb(img) if img is not None else None)
        edits = self.state.image_edits
        name = Path(self.state.image_path).name if self.state.image_path else "pasted image"
        text = f"{name}" + (
            " + " + ", ".join(_edit_label(d) for d in edits) if edits else " (no image edits)"
        )
        self.edits_label.setText(text)
        self.reset_button.setEnabled(bool(edits) and bool(self.state.image_path))
        self._sync_table()

    def _sync_table(self, force: bool = False) -> None:
        """Keep Before / After about the image on screen: rebuilt from its file and edits
        (a reopened session, another model), emptied when no edit is left to compare."""
        st = self.state
        edits = [dict(d) for d in st.image_edits]
        if edits == self._compared and not force:
            return
        self._compared = edits
        try:
            pair = st.wb.edit_comparison() if st.loaded is not None else None
        except (HookScopeError, OSError) as exc:
            pair = None
            st.errorRaised.emit(str(exc))
        if pair is None:
            self.result = None
            self.table.setRowCount(0)
            self.summary.setText("")
            return
        self._compare(*pair)

    def _compare(self, before, after, edit: dict) -> None:
        """Top-k before and after ``edit`` in the worker; the table fills when it ends."""
        st = self.state
        st.worker.submit(
            before_after_job,
            st.loaded,
            before,
            after,
            edit,
            spec=st.input_spec,
            k=st.topk,
            kind="before_after",
            on_result=self._on_before_after,
            on_error=st.errorRaised.emit,
        )

    def reset_image(self) -> None:
        if self.state.image_path:
            self.state.load_image(self.state.image_path)

    # -- patch --------------------------------------------------------------------------------
    def _on_patch_combo(self, i: int) -> None:
        data = self.patch_combo.itemData(i)
        if data == "file":
            path = filedialogs.open_file(self, "Object to paste", filedialogs.IMAGE_FILTER)
            if path:
                self.set_patch(path)
        elif data:
            self.set_patch(data)

    def set_patch(self, path: str | Path, mask: str | Path | None = None) -> bool:
        """Pick the object: ``path`` and its mask (default: ``*_mask.png`` next to it).

        The object starts where it was in its own image; drag it on the canvas to move it.
        """
        mask = mask or mask_for(path)
        try:
            patch = load_image(path)
            m = Image.open(mask).convert("L") if mask else Image.new("L", patch.size, 255)
        except (HookScopeError, OSError) as exc:
            self.state.errorRaised.emit(str(exc))
            return False
        if m.size != patch.size:
            self.state.errorRaised.emit(
                f"The mask {Path(mask).name} is not the size of {Path(path).name}; "
                "use the mask made with that image."
            )
            return False
        self.patch_path, self.mask_path = str(path), str(mask) if mask else None
        self._full_size = patch.size
        self._crop = crop_to_mask(patch, m)
        self._show_patch(place=True)
        self.paste_button.setEnabled(self.state.image is not None)
        self.box_button.setChecked(False)
        return True

    def _scale(self) -> float:
        return self.scale_box.value() / 100.0

    def _show_patch(self, *_, place: bool = False) -> None:
        if self._crop is None:
            return
        crop, mcrop, (left, top) = self._crop
        s = self._scale()
        size = (max(1, round(crop.width * s)), max(1, round(crop.height * s)))
        rgba = np.dstack(
            [
                pil_to_rgb(crop.resize(size, Image.BILINEAR)),
                np.asarray(mcrop.resize(size, Image.BILINEAR), np.uint8),
            ]
        )
        pos = self.canvas.patch_pos() if self.canvas.has_patch() else (0, 0)
        if place or not self.canvas.has_patch():
            pos = (round(left * s), round(top * s))
            img = self.state.image
            if img is not None and (pos[0] + size[0] > img.width or pos[1] + size[1] > img.height):
                pos = ((img.width - size[0]) // 2, (img.height - size[1]) // 2)
        self.canvas.set_patch(rgba, pos)

    def set_patch_position(self, x: int, y: int) -> None:
        """Put the object's top-left (of its masked part) at image pixel (x, y)."""
        self.canvas.set_patch_pos(x, y)

    def paste_edit(self) -> dict | None:
        """The paste edit for the object where it is now (whole-patch coordinates)."""
        if self._crop is None:
            return None
        _, _, (left, top) = self._crop
        s = self._scale()
        x, y = self.canvas.patch_pos()
        d = {
            "op": "paste",
            "patch": self.patch_path,
            "mask": self.mask_path,
            # The canvas holds the cut-out; the edit stores the whole patch, shifted back.
            "xy": [int(x - round(left * s)), int(y - round(top * s))],
        }
        if s != 1.0:
            d["size"] = [round(self._full_size[0] * s), round(self._full_size[1] * s)]
        return d

    def apply_paste(self) -> bool:
        d = self.paste_edit()
        if d is None:
            self.state.errorRaised.emit("Pick an object to paste first.")
            return False
        ok = self.apply_edit(d)
        if ok:
            self.canvas.set_patch(None)
            self.paste_button.setEnabled(False)
            self._crop = None
        return ok

    # -- plain colour / occlusion --------------------------------------------------------------
    def pick_solid(self) -> None:
        colour = QColorDialog.getColor(QColor(*SKY_BLUE), self, "Plain colour")
        if colour.isValid():
            self.apply_solid((colour.red(), colour.green(), colour.blue()))

    def apply_solid(self, rgb: tuple[int, int, int]) -> bool:
        return self.apply_edit({"op": "solid", "colour": [int(c) for c in rgb]})

    def _on_box_mode(self, on: bool) -> None:
        self.canvas.set_mode("box" if on else "move")
        if not on:
            self.canvas.set_box(None)

    def _on_box(self) -> None:
        self.occlude_button.setEnabled(self.canvas.box() is not None)

    def set_box(self, box: tuple[int, int, int, int]) -> None:
        """Set the occlusion box (left, top, right, bottom) in image pixels."""
        self.box_button.setChecked(True)
        self.canvas.set_box(box)

    def apply_occlusion(self) -> bool:
        box = self.canvas.box()
        if box is None:
            self.state.errorRaised.emit("Drag a box on the canvas first.")
            return False
        colour = list(self.box_colour.currentData())
        ok = self.apply_edit({"op": "occlude", "box": list(box), "colour": colour})
        if ok:
            self.box_button.setChecked(False)
        return ok

    # -- applying -----------------------------------------------------------------------------
    def apply_edit(self, d: dict) -> bool:
        """Apply one image edit to the current image; it becomes the input, then compare."""
        st = self.state
        if st.image is None:
            st.errorRaised.emit("Open an image first.")
            return False
        before = st.image
        try:
            after = apply_image_edits(before, [d])
        except (HookScopeError, OSError) as exc:
            st.errorRaised.emit(str(exc))
            return False
        edits = [*st.image_edits, dict(d)]
        if st.loaded is not None:
            self._compare(before, after, d)
        self._compared = edits  # asked for here: the image change that follows needs no other
        st.set_edited_image(after, edits)
        return True

    def _on_before_after(self, result) -> None:
        self.result = result
        n = max(len(result.before), len(result.after))
        self.table.setRowCount(n)
        for col, rows in enumerate((result.before, result.after)):
            for r in range(n):
                text = ""
                if r < len(rows):
                    i, name, p = rows[r]
                    text = f"{name or i}  {p:.1%}"
                self.table.setItem(r, col, QTableWidgetItem(text))
        (bi, bn, bp), (ai, an, ap) = result.before[0], result.after[0]
        moved = max(result.classes, key=lambda c: abs(c.delta))
        self.summary.setText(
            f"Top-1 {bn or bi} ({bp:.1%}) → {an or ai} ({ap:.1%}). Biggest change: "
            f"{moved.name or moved.index} {moved.delta:+.1%}."
        )

    # -- figures ------------------------------------------------------------------------------
    def make_panels(self) -> list[Panel]:
        if self.state.image is None:
            return []
        return [("edited image", pil_to_rgb(self.state.image))]

    def settings(self) -> dict:
        return {"image_edits": list(self.state.image_edits)} if self.state.image_edits else {}


def _edit_label(d: dict) -> str:
    op = d.get("op")
    if op == "paste":
        return f"pasted {Path(str(d.get('patch'))).stem} at {tuple(d.get('xy', (0, 0)))}"
    if op == "solid":
        return f"plain colour {tuple(d.get('colour', ()))}"
    if op == "occlude":
        return f"box {tuple(d.get('box', ()))} occluded"
    return str(op)
