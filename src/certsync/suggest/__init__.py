"""Mapping suggestions: which Monotree template each unmapped Natecosmic type most likely is.

Public surface: `seen_types` (the types a pull holds), `suggest` (the best
template and the runner-up for each, pure), `Thresholds`, `Suggestion`,
`similarity` (two titles, 0 to 1).
"""

from certsync.suggest.proposals import (
    Candidate,
    SeenType,
    Suggestion,
    Thresholds,
    seen_types,
    suggest,
)
from certsync.suggest.similarity import similarity

__all__ = [
    "Candidate",
    "SeenType",
    "Suggestion",
    "Thresholds",
    "seen_types",
    "similarity",
    "suggest",
]
