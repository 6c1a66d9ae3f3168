"""The workbench: what the user chose and what the last run produced, without Qt.

napari's ``ViewerModel`` shape: a plain object that holds the state and the policy (the
default layers, target validation, region targets), tells listeners what changed, and builds
the request a run needs. The GUI's ``AppState`` adapts it to Qt signals; tests drive it directly.
"""

from __future__ import annotations

from hookscope.core.loading.models import LoadedModel


def source_args(source, weights=None, trust_pickle: bool = False, device: str = "cpu") -> dict:
    """What reopens a model source: its spec, or for a live module its description.

    A spec string records ``spec``, ``weights``, ``trust_pickle`` and ``device``. A wrapped
    :class:`LoadedModel` (a live module) records ``live``: the module's class as
    ``module.qualname``, its display name, and the spec it was wrapped with (often empty),
    so a session can say which object it needs to be given again.
    """
    if isinstance(source, LoadedModel):
        cls = type(source.model)
        return {
            "spec": source.spec or "",
            "weights": source.weights,
            "trust_pickle": False,
            "device": str(source.device),
            "live": {"class": f"{cls.__module__}.{cls.__qualname__}", "name": source.name},
        }
    return {"spec": source, "weights": weights, "trust_pickle": trust_pickle, "device": device}
