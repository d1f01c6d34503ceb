import pytest

from ticketpack.budget import parse_budget
from ticketpack.errors import UsageError


@pytest.mark.parametrize("text, expected", [
    ("16000000", 16_000_000), ("16MB", 16_000_000), ("16mb", 16_000_000), ("16MiB", 16 * 2**20),
    ("15.5MB", 15_500_000), ("1kib", 1024), ("1.5KiB", 1536), (" 42 ", 42), ("3GB", 3 * 10**9),
])
def test_parse_budget(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "16XB", "-5", "1.0001kB", "1e6", "16 M B"])
def test_bad_budget_names_the_value(text):
    with pytest.raises(UsageError, match="budget"):
        parse_budget(text)
