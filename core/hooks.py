"""Public API: record layers with hooks (``core.engine.hooks``)."""

from hookscope.core.engine.hooks import HookSession, Record, hook_count, resolve_modules

__all__ = ["HookSession", "Record", "hook_count", "resolve_modules"]
