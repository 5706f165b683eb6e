"""Count words in captions, and the ten count variants RemoteCount-style evaluation ranks.

    count_variants("There are two airplanes in the airport .")
    -> (2, ["There are one airplanes ...", "There are two airplanes ...", ..., "There are ten ..."])

A caption qualifies when it holds exactly one count between 1 and 10, written as a word
("two", "Three") or digits ("4"). The variants change only that token, keeping its form
(word or digit, capitalisation), so the captions differ in nothing but the count.
"one" is a count only in front of a noun-like word and not after an article or adjective
("a big airplane and a small one" is not a count; "one of the" is not either).
"""
from __future__ import annotations

import re

NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_WORD_VALUE = {w: i + 1 for i, w in enumerate(NUMBER_WORDS)}
_TOKEN = re.compile(r"\b(one|two|three|four|five|six|seven|eight|nine|ten|10|[1-9])\b", re.IGNORECASE)
# words after which "one" is a pronoun, and words after "one" that make it not a count
_ONE_BEFORE = {"a", "an", "the", "this", "that", "each", "every", "any", "no", "which", "small", "big", "large",
               "little", "other", "another", "long", "short", "white", "green", "red", "blue", "dark", "new",
               "old", "same", "only"}
_ONE_AFTER = {"of", "side", "sides", "another", "by", "end", "ends", "corner", "is", "are", "and", "or", "in",
              "on", "at", "with", "near", "next", "beside", "to", "while", "but", "which", "that", "."}


def _is_count(text: str, match: re.Match) -> bool:
    if match.group(0).lower() != "one":
        # digits glued to units or decimals ("3.5", "10m", "2nd") are excluded by \b + the checks below
        before, after = text[:match.start()], text[match.end():]
        if re.match(r"[.,]\d|st\b|nd\b|rd\b|th\b|%", after) or before.endswith(("-", ".")):
            return False
        return True
    before = text[:match.start()].split()
    after = text[match.end():].split()
    if before and before[-1].lower() in _ONE_BEFORE:
        return False
    if not after or after[0].lower().strip(",;") in _ONE_AFTER or not after[0][0].isalpha():
        return False
    return True


def find_counts(caption: str) -> list[tuple[int, re.Match]]:
    """``(value, match)`` for every count token 1..10 in ``caption``."""
    out = []
    for m in _TOKEN.finditer(caption):
        if _is_count(caption, m):
            token = m.group(0)
            out.append((int(token) if token.isdigit() else _WORD_VALUE[token.lower()], m))
    return out


def _render(value: int, like: str) -> str:
    if like.isdigit():
        return str(value)
    word = NUMBER_WORDS[value - 1]
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[0].isupper():
        return word.capitalize()
    return word


def count_variants(caption: str) -> tuple[int, list[str]] | None:
    """``(true_count, [caption with count 1, ..., count 10])``, or None when the caption does not
    hold exactly one count 1..10."""
    counts = find_counts(caption)
    if len(counts) != 1:
        return None
    value, m = counts[0]
    token = m.group(0)
    variants = [caption[:m.start()] + _render(v, token) + caption[m.end():] for v in range(1, 11)]
    return value, variants


def count_distribution(captions) -> dict[int, int]:
    """How often each true count 1..10 occurs among the qualifying captions (for the chance and
    majority-count baselines of counting accuracy)."""
    from collections import Counter

    found = (count_variants(c) for c in captions)
    return dict(sorted(Counter(f[0] for f in found if f is not None).items()))
