"""The Portuguese catalogue is complete and its compiled form is up to date."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from burgo.web.i18n import LOCALE_DIR

SRC = Path(__file__).resolve().parents[2] / "src" / "burgo" / "web"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]


def test_every_text_of_the_dashboard_is_translated_to_portuguese() -> None:
    used = {
        message if isinstance(message, str) else message[0]
        for _, _, message, _, _ in extract_from_dir(
            str(SRC), METHODS, options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
        )
    }
    assert "Recent changes" in used
    with (LOCALE_DIR / "pt/LC_MESSAGES/burgo.po").open("rb") as source:
        catalog = read_po(source)
    translated = {
        (m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog
        if m.id and m.string and all(m.string) and not m.fuzzy
    }
    assert sorted(used - translated) == [], "run `make messages` and translate the new texts"


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def test_the_compiled_catalogue_matches_its_source() -> None:
    with (LOCALE_DIR / "pt/LC_MESSAGES/burgo.po").open("rb") as source:
        po = {_plain(m.id): _plain(m.string) for m in read_po(source) if m.id}
    mo_bytes = (LOCALE_DIR / "pt/LC_MESSAGES/burgo.mo").read_bytes()
    mo = {_plain(m.id): _plain(m.string) for m in read_mo(io.BytesIO(mo_bytes)) if m.id}
    assert mo == po, "burgo.mo is stale: run `make messages`"
