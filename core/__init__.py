"""HookScope's engine: pure Python + torch + numpy + pillow, never Qt.

Folders, bottom to top (each imports only from the ones below it; import-linter checks it):

- ``errors``, ``reporting``: one-sentence errors; progress and cancel for long jobs.
- ``demo``: the built-in demo (scenes, model, training script).
- ``loading``: model specs, images, the input spec.
- ``engine``: module tree, ``HookSession``, targets, ``run_probe``.
- ``display``: normalisation, channel mosaics, the snapshot a run shows.
- ``methods``: the CAM methods, attributions, metrics.
- ``experiments``: edits, channel importance, compare, sanity check.
- ``io``: export, sessions, hook code.
- ``jobs``: the jobs the app and the CLI run.

The public API keeps short paths: ``core.models``, ``core.images``, ``core.hooks``,
``core.probe``, ``core.cam``, ``core.attribution``, ``core.metrics``, ``core.explain`` (the
explainer registry: every way to a map is one record) and ``core.api`` (``hookscope.explain``).
"""
