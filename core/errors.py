"""The one exception type users see: a single clear sentence."""


class HookScopeError(Exception):
    """A user-facing error; ``str(err)`` is one sentence saying what failed and what to do."""
