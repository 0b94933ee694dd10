"""Codes that identify organisations and places, checked before anything is stored.

- The unified social credit code (统一社会信用代码, GB 32100-2015) of a unit or a maintenance
  company: 18 characters from a 31-character alphabet (digits and capitals without I, O, S, V,
  Z): registration authority, organisation category, the 6-digit administrative division of
  registration, a 9-character organisation code and a check character. The check character is
  verified; the authority and category tables change over time and are not enforced.
- Administrative division codes: GB/T 2260 (6 digits: province `PP0000`, prefecture `PPCC00`,
  county `PPCCDD`), extended by GB/T 10114 to townships (9 digits) and villages or communities
  (12 digits). A code names its own level and its parents.
"""

from __future__ import annotations

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 1, 3, 9, 27, 19, 26, ...


class CodeError(ValueError):
    """A code that cannot be right, with the reason in words."""


def uscc_check_character(first17: str) -> str:
    """The check character for the first 17 characters of a credit code."""
    if len(first17) != 17:
        raise CodeError(f"need 17 characters to compute a check character, got {len(first17)}")
    total = 0
    for ch, weight in zip(first17, _USCC_WEIGHTS, strict=True):
        value = _USCC_VALUE.get(ch)
        if value is None:
            raise CodeError(f"{ch!r} is not a credit-code character")
        total += value * weight
    return USCC_ALPHABET[(31 - total % 31) % 31]


def normalize_uscc(code: str) -> str:
    """The code in canonical form (trimmed, upper case), or CodeError saying what is wrong."""
    c = code.strip().upper()
    if len(c) != 18:
        raise CodeError(f"a unified social credit code has 18 characters, this one {len(c)}")
    bad = sorted({ch for ch in c if ch not in _USCC_VALUE})
    if bad:
        raise CodeError(f"characters not allowed in a credit code: {' '.join(bad)} "
                        "(digits and capitals except I, O, S, V, Z)")
    if not c[2:8].isdigit():
        raise CodeError(f"characters 3-8 must be the administrative division code, not {c[2:8]!r}")
    want = uscc_check_character(c[:17])
    if c[17] != want:
        raise CodeError(f"check character is {c[17]!r}, the first 17 characters give {want!r}")
    return c


ADMIN_LEVELS = ("province", "prefecture", "county", "township", "village")


def admin_level(code: str) -> str:
    """The level an administrative division code names, or CodeError."""
    if not code.isascii() or not code.isdigit() or len(code) not in (6, 9, 12):
        raise CodeError(f"an administrative division code has 6, 9 or 12 digits, not {code!r}")
    if len(code) == 12:
        if code[9:] == "000":
            raise CodeError(f"{code}: a village code does not end in 000")
        return "village"
    if len(code) == 9:
        if code[6:] == "000":
            raise CodeError(f"{code}: a township code does not end in 000")
        return "township"
    if code[:2] == "00":
        raise CodeError(f"{code}: no province has code 00")
    if code[2:] == "0000":
        return "province"
    if code[4:] == "00":
        return "prefecture"
    return "county"


def admin_parent(code: str) -> str | None:
    """The code of the division that contains this one (None for a province)."""
    level = admin_level(code)
    if level == "village":
        return code[:9]
    if level == "township":
        return code[:6]
    if level == "county":
        return code[:4] + "00"
    if level == "prefecture":
        return code[:2] + "0000"
    return None


def admin_within(code: str, ancestor: str) -> bool:
    """True when `code` names `ancestor` itself or a division inside it."""
    node: str | None = code
    while node is not None:
        if node == ancestor:
            return True
        node = admin_parent(node)
    return False
