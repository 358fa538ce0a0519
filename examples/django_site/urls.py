"""URLs of the Django example: a page, an async JSON view and a sync protected view."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path

from authbridge import get_auth_user


def home(request: HttpRequest) -> HttpResponse:
    """A template reading ``user`` like any Django template (a sync view)."""
    return render(request, "home.html")


async def me(request: HttpRequest) -> JsonResponse:
    """An async view: the ``users`` row through the public helper."""
    user = await get_auth_user(request)
    if user is None:
        return JsonResponse({"error": "Unauthenticated"}, status=401)
    return JsonResponse({"userId": user.id, "email": user.email})


@login_required  # type: ignore[untyped-decorator]
def dashboard(request: HttpRequest) -> JsonResponse:
    """Sync and protected: signed-out visitors go to ``LOGIN_URL?next=/dashboard``."""
    data: dict[str, Any] = {"userId": request.user.pk, "sessionId": request.auth.session_id}
    return JsonResponse(data)


urlpatterns = [path("", home), path("api/me", me), path("dashboard", dashboard)]
