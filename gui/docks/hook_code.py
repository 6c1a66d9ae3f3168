"""Hook code dock: the plain PyTorch hooks that do what the app does now, ready to copy.

Text only (``core.io.hookcode.hook_code`` writes it; no torch runs here), refreshed when the
model, image, layers, target or edits change.
"""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QPushButton

from hookscope.core.errors import HookScopeError
from hookscope.core.io.hookcode import hook_code
from hookscope.gui.docks.base import BaseDock


class HookCodeDock(BaseDock):
    """Read-only, monospace script; Copy puts it on the clipboard."""

    TITLE = "Hook code"
    OBJECT_NAME = "HookCodeDock"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.copy_code_button = QPushButton("Copy code", self)
        self.copy_code_button.setToolTip("Copy the script to the clipboard")
        self.copy_code_button.clicked.connect(self.copy_code)
        self.add_header_widget(self.copy_code_button)
        self.editor = QPlainTextEdit(self)
        self.editor.setReadOnly(True)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.body.addWidget(self.editor, 1)
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        self.body.addWidget(self.note)
        for sig in (
            state.modelChanged,
            state.imageChanged,
            state.layersChanged,
            state.targetChanged,
            state.editsChanged,
        ):
            sig.connect(lambda *_: self.refresh())
        self.refresh()

    def text(self) -> str:
        return self.editor.toPlainText()

    def code(self) -> str:
        """The script for the current choices ("" when no model is loaded)."""
        st = self.state
        spec = st.model_args.get("spec")
        if not spec:
            return ""
        grads = [d for d in st.edits if d.get("kind") == "grad"]
        acts = [d for d in st.edits if d.get("kind") == "act"]
        return hook_code(
            spec,
            st.model_args.get("weights"),
            st.image_path,
            list(st.layers),
            st.target,
            grads,
            acts,
            image_edits=list(st.image_edits) if st.image_path else [],
            kind=st.output_kind().kind if st.output_kind() is not None else None,
        )

    def refresh(self) -> None:
        try:
            text = self.code()
        except HookScopeError as exc:  # one comment line, whatever the sentence quotes
            text = "# " + " ".join(str(exc).splitlines()) + "\n"
        bar = self.editor.verticalScrollBar()
        pos = bar.value()
        self.editor.setPlainText(text)
        bar.setValue(pos)  # keep the reader's place across small changes
        st = self.state
        notes = []
        if st.image is not None and not st.image_path:
            notes.append("The image was pasted, not opened: the script uses a grey image.")
        self.note.setText(" ".join(notes) or "Run it from the repository folder.")
        self.note.setVisible(bool(text))

    def copy_code(self) -> None:
        QGuiApplication.clipboard().setText(self.text())
        self.state.statusMessage.emit("Hook code copied to the clipboard.")

    def settings(self) -> dict:
        return {"code": self.text()} if self.text() else {}
