"""Raw ASGI example (``python -m uvicorn examples.plain_asgi.app:app``)."""
