"""ISO 8601 durations (``P1Y2M3DT4H5M6.5S``, ``P2W``), as ``aggrPeriodDuration`` uses them.

A duration is a number of calendar months plus an exact number of milliseconds: months and years
vary in length, so they are added on the calendar; weeks, days, hours, minutes and seconds are
exact (UTC has no daylight saving).

>>> parse_duration("P1DT12H").millis
129600000
>>> parse_duration("P1Y2M").months
14
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from burgo.ngsild.errors import BadRequestData

_PATTERN = re.compile(
    r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:[.,](\d{1,3}))?S)?)?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND, MINUTE, HOUR, DAY = 1000, 60_000, 3_600_000, 86_400_000
# Beyond this a period would leave the range of dates Python (and NGSI-LD) can write.
_MAX_MONTHS = 12 * 10_000
_MAX_MILLIS = 10_000 * 366 * DAY


@dataclass(frozen=True, slots=True)
class Duration:
    """A length of time: calendar ``months`` plus exact ``millis``."""

    months: int = 0
    millis: int = 0

    @property
    def is_zero(self) -> bool:
        """Whether this is a zero duration (``PT0S``: one period over the whole range)."""
        return self.months == 0 and self.millis == 0

    def after(self, epoch_ms: int) -> int:
        """The instant (epoch milliseconds) this duration after ``epoch_ms``."""
        if self.months:
            epoch_ms = add_months(epoch_ms, self.months)
        return epoch_ms + self.millis


def add_months(epoch_ms: int, months: int) -> int:
    """``epoch_ms`` moved on by calendar months, the day clipped to the month's length."""
    moment = _EPOCH + timedelta(milliseconds=epoch_ms)
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, monthrange(year, month + 1)[1])
    moved = moment.replace(year=year, month=month + 1, day=day)
    return (moved - _EPOCH) // timedelta(milliseconds=1)


def parse_duration(text: str, what: str = "aggrPeriodDuration") -> Duration:
    """Parse an ISO 8601 duration; BadRequestData names ``what`` when it is not one."""
    match = _PATTERN.match(text)
    if match is None:
        raise BadRequestData(
            f"{what} must be an ISO 8601 duration such as PT1H, P1D or P1M, got {text!r}"
        )
    groups = match.groups()
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in groups[:7])
    fraction = groups[7]
    total_months = years * 12 + months
    millis = (
        (weeks * 7 + days) * DAY
        + hours * HOUR
        + minutes * MINUTE
        + seconds * SECOND
        + (int(fraction.ljust(3, "0")) if fraction else 0)
    )
    if total_months > _MAX_MONTHS or millis > _MAX_MILLIS:
        raise BadRequestData(f"{what} is too long: {text!r}")
    return Duration(total_months, millis)


def format_duration(duration: Duration) -> str:
    """The canonical ISO 8601 text of a duration (``PT0S`` for zero)."""
    years, months = divmod(duration.months, 12)
    days, rest = divmod(duration.millis, DAY)
    hours, rest = divmod(rest, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    seconds, millis = divmod(rest, SECOND)
    date = "".join(f"{n}{unit}" for n, unit in ((years, "Y"), (months, "M"), (days, "D")) if n)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n)
    if seconds or millis:
        time += f"{seconds}.{millis:03d}S" if millis else f"{seconds}S"
    if not date and not time:
        return "PT0S"
    return "P" + date + ("T" + time if time else "")
