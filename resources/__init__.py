"""HookScope's bundled files: the demo's weights and sample images.

This folder is installed as the package ``hookscope_resources`` (see pyproject.toml), so code
finds the files with ``importlib.resources.files("hookscope_resources")`` wherever HookScope
is installed; ``core.demo.resource_path`` does that.
"""
