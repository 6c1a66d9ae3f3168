"""HookScope from a checkout: ``python main.py`` opens the app; subcommands run jobs headless.

Installed, the same entry point is the ``hookscope`` command (``hookscope.gui.command``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _checkout_package() -> None:
    """Make ``import hookscope`` name this checkout when it is not installed.

    The wheel maps ``resources/`` to ``hookscope`` and ``core/``, ``gui/`` to ``hookscope.core``,
    ``hookscope.gui``; here the same happens by giving the package both folders as its path.
    """
    if "hookscope" in sys.modules or importlib.util.find_spec("hookscope") is not None:
        return
    root = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location(
        "hookscope",
        root / "resources" / "__init__.py",
        submodule_search_locations=[str(root / "resources"), str(root)],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["hookscope"] = module
    spec.loader.exec_module(module)


if __name__ == "__main__":
    _checkout_package()
    from hookscope.gui.command import main

    sys.exit(main())
