"""Public API: load a model from a spec (``core.loading.models`` holds the code)."""

from hookscope.core.loading.models import LoadedModel, load_model, pick_device

__all__ = ["LoadedModel", "load_model", "pick_device"]
