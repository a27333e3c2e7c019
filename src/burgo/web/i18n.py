"""The dashboard's languages: gettext catalogues (web/locale) and the visitor's choice.

The choice comes from ``?lang=`` (remembered in a cookie), then the cookie, then the browser's
Accept-Language, then English.

>>> best_language("pt-PT,pt;q=0.9,en;q=0.8")
'pt'
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

from starlette.requests import Request

LANGUAGES = {"en": "English", "pt": "Português"}
DEFAULT_LANGUAGE = "en"
COOKIE = "burgo_lang"
DOMAIN = "burgo"
LOCALE_DIR = Path(__file__).parent / "locale"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``language`` (English is the source: no catalogue needed)."""
    if language == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])


def best_language(accept_language: str) -> str | None:
    """The first language of an Accept-Language header the dashboard speaks, by weight."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        ranked.append((-weight, position, tag.strip().lower().split("-")[0]))
    for weight, _, code in sorted(ranked):
        if weight < 0 and code in LANGUAGES:
            return code
    return None


def requested_language(request: Request) -> str | None:
    """The language a ``?lang=`` parameter asks for, if it names one the dashboard speaks."""
    asked = request.query_params.get("lang")
    return asked if asked in LANGUAGES else None


def language_of(request: Request) -> str:
    """The language to answer ``request`` in."""
    asked = requested_language(request)
    if asked is not None:
        return asked
    remembered = request.cookies.get(COOKIE)
    if remembered in LANGUAGES:
        return remembered
    return best_language(request.headers.get("accept-language", "")) or DEFAULT_LANGUAGE
