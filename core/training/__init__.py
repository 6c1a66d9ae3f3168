"""Training health: ``watch`` records statistics around the user's loop, ``diagnose`` reads them.

- ``stats``: what one record holds per module and parameter.
- ``store``: the run folder (atomic Parquet chunks, probe maps, ``run.json``).
- ``watch``: the hooks and the recorder (``hookscope.watch``).
- ``diagnose``: the rules that turn a run into sentences (``hookscope.diagnose``).
"""
