"""The notes demo app (``python -m uvicorn examples.notes.app:app``)."""
