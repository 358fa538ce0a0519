"""The ASGI entry point: Django's application wrapped in ``AuthMiddleware``.

Run it from the repository root::

    python -m uvicorn examples.django_site.asgi:application
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from authbridge import Auth, AuthConfig, AuthMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_site.settings")

auth = Auth(AuthConfig.from_env(), create_tables=True)
application = AuthMiddleware(get_asgi_application(), auth)
