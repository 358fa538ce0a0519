"""Litestar example (``python -m uvicorn examples.litestar_app.app:app``)."""
