"""The dashboard's Jinja2 environments (one per language) and the filters its templates use.

>>> format_number(21.456)
'21.46'
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from burgo.web.i18n import translations
from burgo.web.things import Value

TEMPLATES = Path(__file__).parent / "templates"
# UN/CEFACT common codes (what NGSI-LD unitCode holds) and how to show them.
UNITS = {
    "CEL": "°C",
    "P1": "%",
    "GQ": "µg/m³",
    "GP": "mg/m³",
    "59": "ppm",
    "61": "ppb",
    "2N": "dB",
    "KWH": "kWh",
    "WTT": "W",
    "KWT": "kW",
    "MTR": "m",
    "MMT": "mm",
    "MTS": "m/s",
    "KMH": "km/h",
    "A97": "hPa",
    "HUR": "h",
    "LUX": "lx",
    "VLT": "V",
    "AMP": "A",
    "DD": "°",
    "C62": "",
    "H61": "mS/cm",
}

# Smart Data Models attributes given in parts per one (0..1), shown as percentages.
PARTS_PER_ONE = frozenset({"fillingLevel", "soilMoistureVwc", "relativeHumidity"})


def format_number(value: float) -> str:
    """A measurement as people read it: at most two decimals, no trailing zeros."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def unit_symbol(code: str | None) -> str:
    """The symbol of a unit code (the code itself when it is not a common one)."""
    if not code:
        return ""
    return UNITS.get(code, code)


def shown(value: Value) -> str:
    """An attribute value with its unit, short enough for a table cell."""
    raw = value.value
    if value.numeric:
        if value.name in PARTS_PER_ONE and value.unit in (None, "C62") and 0 <= raw <= 1:
            return f"{format_number(raw * 100)} %"
        unit = unit_symbol(value.unit)
        return f"{format_number(raw)} {unit}".strip()
    if isinstance(raw, bool):
        return "✓" if raw else "✗"
    if isinstance(raw, list):
        return ", ".join(str(item) for item in raw)
    if isinstance(raw, dict):
        return str(raw.get("@value", raw.get("value", "…")))
    text = str(raw)
    return text if len(text) <= 80 else text[:79] + "…"


def when(text: str | None) -> str:
    """A timestamp as day and minute in UTC."""
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _number_filter(value: Any) -> str:
    return format_number(value) if isinstance(value, int | float) else str(value)


@cache
def environment(language: str) -> Environment:
    """The template environment that speaks ``language``."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        auto_reload=False,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["shown"] = shown
    env.filters["when"] = when
    env.filters["unit"] = unit_symbol
    env.filters["number"] = _number_filter
    return env
