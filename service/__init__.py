"""The HTTP search service (FastAPI + uvicorn) over :mod:`lsr.index`.

Not built yet: the service issue adds ``create_app(settings)`` here. Until then, search through the
Python API (:func:`lsr.index.open_index`) or the ``lsr search`` command.
"""
