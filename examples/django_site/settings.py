"""Settings of the Django example: authbridge's middleware instead of Django's sessions/auth."""

from __future__ import annotations

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "authbridge-example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "examples.django_site.urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]  # for login_required
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "authbridge.django.AuthenticationMiddleware",  # instead of Django's AuthenticationMiddleware
]
LOGIN_URL = "/signin"  # authbridge's sign-in page (built in, as this project has none)
DATABASES: dict[str, dict[str, str]] = {}  # authbridge keeps its own tables
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",  # `user` = request.user
            ]
        },
    }
]
USE_TZ = True
AUTHBRIDGE_AUTH = "examples.django_site.asgi.auth"
"""For Django's test clients, which bypass the ASGI wrapper (see authbridge.testing)."""
