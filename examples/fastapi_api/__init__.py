"""FastAPI example (``python -m uvicorn examples.fastapi_api.app:app``)."""
