"""Credit codes and administrative division codes (org/codes.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from org.codes import (
    USCC_ALPHABET,
    CodeError,
    admin_level,
    admin_parent,
    admin_within,
    normalize_uscc,
    uscc_check_character,
)

# Published codes of real companies (their registration certificates are public).
REAL = ["91350100M000100Y43", "91440300708461136T"]

body = st.tuples(st.sampled_from("159"), st.sampled_from("123"),
                 st.text("0123456789", min_size=6, max_size=6),
                 st.text(USCC_ALPHABET, min_size=9, max_size=9)).map("".join)


@pytest.mark.parametrize("code", REAL)
def test_real_codes_pass(code: str) -> None:
    assert normalize_uscc(code) == code
    assert normalize_uscc(f"  {code.lower()} ") == code


@given(body)
def test_a_code_with_its_check_character_passes(first17: str) -> None:
    code = first17 + uscc_check_character(first17)
    assert normalize_uscc(code) == code


@given(body, st.integers(0, 16), st.sampled_from(USCC_ALPHABET))
def test_any_single_changed_character_is_caught(first17: str, i: int, ch: str) -> None:
    """One wrong character anywhere (a typo) changes the check: the weights are units mod 31."""
    code = first17 + uscc_check_character(first17)
    if ch == code[i] or (2 <= i < 8 and not ch.isdigit()):
        return
    typo = code[:i] + ch + code[i + 1:]
    with pytest.raises(CodeError):
        normalize_uscc(typo)


@pytest.mark.parametrize(("code", "reason"), [
    ("91350100M000100Y4", "18 characters"),
    ("91350100M000100Y44", "check character"),
    ("91350100M00O100Y43", "not allowed"),
    ("913501A0M000100Y43", "administrative division"),
])
def test_bad_codes_say_why(code: str, reason: str) -> None:
    with pytest.raises(CodeError, match=reason):
        normalize_uscc(code)


@pytest.mark.parametrize(("code", "level", "parent"), [
    ("350000", "province", None),
    ("350100", "prefecture", "350000"),
    ("350102", "county", "350100"),
    ("350102001", "township", "350102"),
    ("350102001002", "village", "350102001"),
])
def test_admin_levels_and_parents(code: str, level: str, parent: str | None) -> None:
    assert admin_level(code) == level
    assert admin_parent(code) == parent
    assert admin_within(code, "350000")
    assert not admin_within(code, "360000")


@pytest.mark.parametrize("code", ["35010", "3501020", "000000", "350102000", "35010200100a",
                                  "\uff13\uff15\uff10\uff11\uff10\uff12"])  # the last: full-width digits
def test_bad_admin_codes(code: str) -> None:
    with pytest.raises(CodeError):
        admin_level(code)
