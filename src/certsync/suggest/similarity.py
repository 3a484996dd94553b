"""How alike two certificate titles are, as a person matching them by eye would judge.

Titles are normalised (case, accents, punctuation, word order, common
abbreviations) and compared word by word, forgiving small typos. Numbers are
significant: "Level 2" never matches "Level 3", and a title with a number is
only a weak match for one without.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache

# Written the long way: what an abbreviation in a title stands for.
_ABBREVIATIONS = {
    "cert": "certificate",
    "certs": "certificate",
    "certificates": "certificate",
    "certification": "certificate",
    "certifications": "certificate",
    "certified": "certificate",
    "lvl": "level",
    "lv": "level",
    "lev": "level",
    "mgmt": "management",
    "mgt": "management",
    "adv": "advanced",
    "intro": "introduction",
    "introductory": "introduction",
    "basics": "basic",
    "fundamentals": "basic",
    "h": "health",
    "s": "safety",
    "hs": "health safety",
    "hse": "health safety",
    "ehs": "environment health safety",
    "env": "environment",
    "environmental": "environment",
    "mgr": "manager",
    "ops": "operations",
    "op": "operator",
    "equip": "equipment",
    "mach": "machinery",
    "elec": "electrical",
    "tech": "technician",
    "int": "international",
    "intl": "international",
    "natl": "national",
    "govt": "government",
    "dept": "department",
    "prof": "professional",
    "qual": "qualification",
    "trng": "training",
    "yr": "year",
    "yrs": "year",
    "years": "year",
    "hazmat": "hazardous materials",
    "fork": "forklift",
    "aml": "anti money laundering",
    "info": "information",
    "infosec": "information security",
    "cat": "category",
    "mhfa": "mental health first aid",
    "efaw": "emergency first aid work",
    "faw": "first aid work",
}
_NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "first": "1",
    "second": "2",
    "third": "3",
    "1st": "1",
    "2nd": "2",
    "3rd": "3",
    "4th": "4",
}
# Roman numerals only after a word that takes a number, so "I" stays a word elsewhere.
_ROMAN = {"i": "1", "ii": "2", "iii": "3", "iv": "4", "v": "5", "vi": "6"}
# After these a single letter is a grade too: "Category C" is not "Category D".
_TAKES_NUMBER = {
    "level",
    "part",
    "stage",
    "grade",
    "class",
    "module",
    "tier",
    "step",
    "unit",
    "category",
}
_STOPWORDS = {"the", "of", "in", "for", "and", "a", "an", "to", "at", "on", "with", "by"}
# Words nearly every title has: they count, but little.
_GENERIC = {
    "certificate",
    "course",
    "train",
    "awareness",
    "award",
    "qualification",
    "program",
    "programme",
    "level",
    "basic",
}
_GENERIC_WEIGHT = 0.25
# Two words this alike are the same word mistyped ("saftey", "safety").
_TYPO_RATIO = 0.8
_NO_NUMBER_PENALTY = 0.7


@dataclass(frozen=True, slots=True)
class Title:
    """A title as compared: its words (without numbers) and its numbers."""

    words: frozenset[str]
    numbers: frozenset[str]


def _split(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in plain if not unicodedata.combining(c)).lower()
    plain = plain.replace("&", " and ").replace("'", "")
    # "L2", "Level2", "lvl 3" are the word level and a number; "2nd" stays whole.
    plain = re.sub(r"\b(?:l|lvl|lv|lev|level)\s*(\d+)\b", r"level \1", plain)
    plain = re.sub(r"\b(part|grade|stage|module|unit)(\d+)\b", r"\1 \2", plain)
    return re.findall(r"[a-z0-9]+", plain)


def _stem(word: str) -> str:
    """ "Working" is "work", "heights" is "height": enough for titles, no dictionary."""
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@lru_cache(maxsize=4096)
def normalise(text: str) -> Title:
    words: set[str] = set()
    numbers: set[str] = set()
    previous = ""
    for raw in _split(text):
        token = _NUMBER_WORDS.get(raw, raw)
        if previous in _TAKES_NUMBER and token in _ROMAN:
            token = _ROMAN[token]
        for part in _ABBREVIATIONS.get(token, token).split():
            if part.isdigit():
                numbers.add(str(int(part)))
            elif len(part) == 1 and previous in _TAKES_NUMBER:
                numbers.add(part)
            elif part not in _STOPWORDS:
                words.add(_stem(part))
            previous = part
    return Title(frozenset(words), frozenset(numbers))


def _weight(word: str) -> float:
    return _GENERIC_WEIGHT if word in _GENERIC else 1.0


def _best_match(word: str, others: frozenset[str]) -> float:
    if word in others:
        return 1.0
    best = 0.0
    for other in others:
        # Short words must match exactly: "aid" is not "aed".
        if min(len(word), len(other)) < 5:
            continue
        ratio = SequenceMatcher(None, word, other).ratio()
        if ratio >= _TYPO_RATIO:
            best = max(best, ratio)
    return best


def similarity(a: str, b: str) -> float:
    """0 (nothing alike) to 1 (the same title once normalised)."""
    left, right = normalise(a), normalise(b)
    if left.numbers and right.numbers and left.numbers != right.numbers:
        return 0.0  # another level or part: never the same certificate
    total = sum(_weight(w) for w in left.words) + sum(_weight(w) for w in right.words)
    if total == 0:
        return 1.0 if left.numbers == right.numbers and left.numbers else 0.0
    matched = sum(_weight(w) * _best_match(w, right.words) for w in left.words) + sum(
        _weight(w) * _best_match(w, left.words) for w in right.words
    )
    score = matched / total
    if left.numbers != right.numbers:
        score *= _NO_NUMBER_PENALTY  # one says which level, the other does not
    return round(score, 4)
