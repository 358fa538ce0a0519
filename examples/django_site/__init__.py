"""A Django project served over ASGI with authbridge (see ``asgi.py`` and ``settings.py``)."""
