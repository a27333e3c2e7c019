"""ISO 8601 durations for aggrPeriodDuration: parsed strictly, round-tripped, added on the
calendar."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burgo.ngsild.duration import DAY, HOUR, Duration, add_months, format_duration, parse_duration
from burgo.ngsild.errors import BadRequestData
from burgo.ngsild.temporal import from_millis, to_millis


@pytest.mark.parametrize(
    ("text", "months", "millis"),
    [
        ("PT1H", 0, HOUR),
        ("P1D", 0, DAY),
        ("P2W", 0, 14 * DAY),
        ("P1Y2M", 14, 0),
        ("P3Y6M4DT12H30M5S", 42, 4 * DAY + 12 * HOUR + 30 * 60_000 + 5000),
        ("PT0.5S", 0, 500),
        ("PT1,25S", 0, 1250),
        ("PT0S", 0, 0),
        ("P0D", 0, 0),
        ("PT15M", 0, 15 * 60_000),
    ],
)
def test_durations_parse(text: str, months: int, millis: int) -> None:
    assert parse_duration(text) == Duration(months, millis)


@pytest.mark.parametrize(
    "text", ["", "P", "PT", "1H", "PT1", "P1H", "PT1D", "P-1D", "P1.5D", "PT1.0001S", "p1d",
             "P1DT", "R2/PT1H", "2024-01-01/P1D", "P99999999Y"],
)  # fmt: skip
def test_what_is_not_a_duration_is_bad_request_data(text: str) -> None:
    with pytest.raises(BadRequestData, match="aggrPeriodDuration"):
        parse_duration(text)


durations = st.builds(
    Duration,
    months=st.integers(0, 1200),
    millis=st.integers(0, 400 * DAY),
)


@settings(max_examples=200)
@given(durations)
def test_canonical_text_reads_back_as_the_same_duration(duration: Duration) -> None:
    assert parse_duration(format_duration(duration)) == duration


@settings(max_examples=200)
@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                 timezones=st.just(UTC)),
    st.integers(0, 1200),
)  # fmt: skip
def test_adding_months_keeps_the_time_of_day_and_clips_the_day(
    moment: datetime, months: int
) -> None:
    start = to_millis(moment.replace(microsecond=moment.microsecond // 1000 * 1000))
    moved = datetime.fromisoformat(from_millis(add_months(start, months)))
    original = datetime.fromisoformat(from_millis(start))
    assert (moved.year * 12 + moved.month) - (original.year * 12 + original.month) == months
    assert moved.time() == original.time()
    assert moved.day == original.day or moved.day < original.day


def test_month_ends_clip() -> None:
    jan31 = to_millis(datetime(2024, 1, 31, tzinfo=UTC))
    assert from_millis(add_months(jan31, 1)) == "2024-02-29T00:00:00.000Z"
    assert from_millis(Duration(1, HOUR).after(jan31)) == "2024-02-29T01:00:00.000Z"
