"""The product's URLconf plus two bare DRF endpoints, for the web benchmark only.

``/bench/bare/`` is the cheapest DRF response (no authentication, no database);
``/bench/bare-auth/`` adds the product's authentication and permission classes
(an API-token lookup), so ``POST /api/v1/plans/`` can be compared with both.
"""

from __future__ import annotations

from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import handler400, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as product_urlpatterns


class BareApi(APIView):
    """Returns a constant: DRF's own floor."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    def post(self, request: Request) -> Response:
        return Response({"ok": True})


class BareAuthApi(APIView):
    """Returns a constant after the default (token) authentication and permission."""

    def post(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [
    path("bench/bare/", BareApi.as_view()),
    path("bench/bare-auth/", BareAuthApi.as_view()),
    *product_urlpatterns,
]
