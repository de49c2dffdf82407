"""Bech32 (BIP-173) as age uses it: for ``age1…`` recipients and ``AGE-SECRET-KEY-1…`` identities.

Written from BIP-173 because no Bech32 package is installed. As the age spec says,
there is no length limit on the data part; a string is either all lower case or
all upper case (never mixed), and the checksum is computed over the lower-case form.
This is Bech32, not Bech32m (BIP-350): the checksum constant is 1.
"""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_VALUES = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


class Bech32Error(ValueError):
    """The text is not valid Bech32 (the message says why; it never repeats the text)."""


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    mask = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & mask)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & mask)
    elif bits >= from_bits:
        raise Bech32Error("Bech32 data has excess padding")
    elif (acc << (to_bits - bits)) & mask:
        raise Bech32Error("Bech32 data has non-zero padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """Encodes ``data`` under ``hrp``; an upper-case ``hrp`` gives an all upper-case string."""
    if not hrp or any(not 33 <= ord(c) <= 126 for c in hrp):
        raise Bech32Error("invalid Bech32 human-readable part")
    if hrp.lower() != hrp and hrp.upper() != hrp:
        raise Bech32Error("mixed-case Bech32 human-readable part")
    lower = hrp.lower()
    values = _regroup(data, 8, 5, pad=True)
    mod = _polymod([*_hrp_expand(lower), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(mod >> (5 * (5 - i))) & 31 for i in range(6)]
    text = lower + "1" + "".join(CHARSET[v] for v in values + checksum)
    return text if hrp == lower else text.upper()


def decode(text: str) -> tuple[str, bytes]:
    """Decodes Bech32 text into ``(hrp, data)``; the hrp keeps the case of the text.

    Raises:
        Bech32Error: mixed case, a bad character or separator, a bad checksum or padding.
    """
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("mixed-case Bech32 string")
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise Bech32Error("Bech32 separator '1' missing or misplaced")
    hrp = text[:pos]
    if any(not 33 <= ord(c) <= 126 for c in hrp):
        raise Bech32Error("invalid character in the Bech32 human-readable part")
    try:
        values = [_VALUES[c] for c in text[pos + 1 :].lower()]
    except KeyError:
        raise Bech32Error("invalid character in the Bech32 data part") from None
    if _polymod(_hrp_expand(hrp.lower()) + values) != 1:
        raise Bech32Error("bad Bech32 checksum")
    return hrp, bytes(_regroup(values[:-6], 5, 8, pad=False))
