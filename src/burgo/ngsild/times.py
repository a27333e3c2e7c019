"""NGSI-LD DateTime values: parsed strictly, written in one canonical UTC form."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from burgo.ngsild.errors import BadRequestData


def parse_datetime(text: object, what: str = "DateTime") -> datetime:
    """Parse an ISO 8601 date-time with a time zone into an aware UTC datetime."""
    if not isinstance(text, str) or "T" not in text:
        raise BadRequestData(f"{what} must be an ISO 8601 date-time string, got {text!r}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequestData(f"{what} is not a valid ISO 8601 date-time: {text!r}") from exc
    if parsed.tzinfo is None:
        raise BadRequestData(f"{what} must carry a time zone (e.g. a trailing Z): {text!r}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise BadRequestData(f"{what} is out of range once converted to UTC: {text!r}") from exc


def format_datetime(moment: datetime) -> str:
    """The canonical form Burgo stores and returns: UTC, milliseconds, trailing Z."""
    utc = moment.astimezone(UTC)
    # strftime does not zero-pad years before 1000, which would not read back.
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def canonical_datetime(text: object, what: str = "DateTime") -> str:
    """Validate a client's date-time and return it in canonical form."""
    if type(text) is str:
        found = _CANONICAL.get(text)
        if found is None:
            found = _utc_seconds(text)
            if found is None:
                found = format_datetime(parse_datetime(text, what))
            if len(_CANONICAL) >= _CANONICAL_KEPT:
                _CANONICAL.clear()
            _CANONICAL[text] = found
        return found
    return format_datetime(parse_datetime(text, what))


def _utc_seconds(text: str) -> str | None:
    """The canonical form of a UTC date-time given to the second or millisecond with a
    trailing Z (what devices mostly send), made without converting and formatting a datetime;
    None for any other form."""
    match = _UTC_SECONDS.fullmatch(text)
    if match is None:
        return None
    try:
        datetime.fromisoformat(match[1])  # a real date and time of day (no 24:00, no Feb 30)
    except ValueError:
        return None
    return f"{match[1]}.{match[2] or '000'}Z"


# Date-times already made canonical: a batch's instances mostly share a few observedAt values.
_CANONICAL: dict[str, str] = {}
_CANONICAL_KEPT = 4096
_UTC_SECONDS = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{3}))?Z", re.ASCII)
