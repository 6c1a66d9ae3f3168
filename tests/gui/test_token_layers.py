"""A ViT's token layer in the panels (issue 23): C channels over the token grid, a CAM choice."""

import numpy as np
import pytest

SPEC = "timm:vit_tiny_patch16_224?img_size=64&depth=2"  # 4×4 patches + class token, 192 channels


def test_a_token_layer_is_192_channels_of_4x4_and_a_cam_layer(make_window):
    pytest.importorskip("timm")
    window = make_window(SPEC, layers=["blocks.1"])
    st = window.state
    call = st.snapshot.call("blocks.1")
    assert st.snapshot.layers["blocks.1"][0].shapes == {"": (1, 17, 192)}
    # Before: (17, 192), shown as "1 channels of 17×192". Now the grid the layout reader found.
    assert call.activation.shape == (192, 4, 4) and call.gradient.shape == (192, 4, 4)
    assert np.isfinite(call.activation).all() and float(call.activation.std()) > 0.01
    # The last block: only the class token (left out of the grid) reaches the head.
    assert float(np.abs(call.gradient).max()) == 0.0 and call.stats["gradient"]["max"] > 0.1
    docks = {d.TITLE: d for d in window.analysis_docks}
    assert docks["Activations"].view.info.text().startswith("192 channels · 4×4")
    window.show_panel(docks["Gradients"])
    assert docks["Gradients"].view.info.text().startswith("192 channels · 4×4")
    # The CAM panel lists the token layer (before: empty for a ViT).
    cam = docks["CAM"]
    window.show_panel(cam)
    names = [cam.layer_list.item(i).text() for i in range(cam.layer_list.count())]
    assert names == ["blocks.1"]
