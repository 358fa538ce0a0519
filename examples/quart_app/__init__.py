"""Quart example (``python -m uvicorn examples.quart_app.app:app``)."""
