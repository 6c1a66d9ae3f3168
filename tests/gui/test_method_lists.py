"""Every dock lists the explainer registry's methods: one list, no copy."""

from hookscope.core.methods import explainers


def dock(window, name):
    return next(d for d in window.docks if d.objectName() == name)


def test_docks_list_the_registry(make_window):
    window = make_window(run=False)
    reg = explainers.EXPLAINERS
    cam = dock(window, "CamDock").method_combo
    assert [cam.itemText(i) for i in range(cam.count())] == explainers.names(explainers.CAM)
    attr = dock(window, "AttributionDock").method_combo
    assert [attr.itemData(i) for i in range(attr.count())] == explainers.names(
        explainers.ATTRIBUTION
    )
    assert [attr.itemText(i) for i in range(attr.count())] == [
        reg[k].title for k in explainers.names(explainers.ATTRIBUTION)
    ]
    scan = dock(window, "DatasetDock").method_combo
    assert [scan.itemText(i) for i in range(scan.count())] == explainers.names(explainers.CAM)
    assert list(dock(window, "TrustDock").method_actions) == list(reg)
    sanity = dock(window, "SanityDock").method_actions
    assert list(sanity) == [k for k, r in reg.items() if r.kind != explainers.CAM]
    assert [k for k, a in sanity.items() if a.isChecked()] == ["guided-backprop"]
