"""Request middleware of the portal."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.middleware.locale import LocaleMiddleware
from django.utils import translation


class ChosenLanguageMiddleware(LocaleMiddleware):
    """Show the language the visitor chose (set_language's cookie), else Chinese.

    Django's LocaleMiddleware would follow the browser's Accept-Language, so an English-language
    browser would never see the Chinese default; the portal is Chinese first, English on request.
    The API keeps Django's negotiation: integrators ask for their language with Accept-Language.
    """

    def process_request(self, request: HttpRequest) -> None:
        if request.path_info.startswith("/api/"):
            super().process_request(request)
            return
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
        if not (chosen and translation.check_for_language(chosen)):
            chosen = settings.LANGUAGE_CODE
        translation.activate(translation.get_supported_language_variant(chosen))
        request.LANGUAGE_CODE = translation.get_language()
