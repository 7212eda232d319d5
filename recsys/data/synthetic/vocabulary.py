"""Names the synthetic platform uses: categories, languages with their countries, tags."""

from __future__ import annotations

import numpy as np

CATEGORIES: tuple[str, ...] = (
    "news", "sports", "comedy", "music", "gaming", "cooking", "travel", "science", "technology",
    "fashion", "beauty", "fitness", "finance", "education", "kids", "animals", "cars", "movies",
    "series", "documentary", "diy", "art", "history", "politics", "health", "nature", "dance",
    "anime", "podcasts", "books", "home", "gardening",
)

# language -> (share of users, countries where it is spoken, with weights)
LANGUAGES: dict[str, tuple[float, dict[str, float]]] = {
    "en": (0.38, {"US": 0.55, "GB": 0.15, "CA": 0.1, "AU": 0.08, "IN": 0.12}),
    "es": (0.16, {"ES": 0.3, "MX": 0.4, "AR": 0.15, "CO": 0.15}),
    "pt": (0.10, {"BR": 0.85, "PT": 0.15}),
    "hi": (0.08, {"IN": 1.0}),
    "fr": (0.07, {"FR": 0.7, "CA": 0.1, "BE": 0.2}),
    "de": (0.07, {"DE": 0.8, "AT": 0.2}),
    "ja": (0.06, {"JP": 1.0}),
    "ko": (0.04, {"KR": 1.0}),
    "it": (0.04, {"IT": 1.0}),
}

TAG_WORDS: tuple[str, ...] = (
    "funny", "tutorial", "live", "short", "classic", "review", "highlights", "interview",
    "remix", "beginner", "advanced", "explainer", "vlog", "behind-the-scenes", "challenge",
    "compilation", "reaction", "asmr", "top10", "how-to", "relaxing", "family", "budget",
    "premium", "retro", "new-release", "award-winning", "debate", "quick", "deep-dive",
)

DEVICE_NAMES: tuple[str, ...] = ("mobile", "desktop", "tablet", "tv")
DEVICE_SHARES = np.array([0.62, 0.2, 0.1, 0.08])


def language_shares() -> np.ndarray:
    shares = np.array([share for share, _ in LANGUAGES.values()])
    return shares / shares.sum()


def country_table() -> tuple[tuple[str, ...], np.ndarray]:
    """All countries, and a (languages x countries) matrix of P(country | language)."""
    countries = tuple(sorted({c for _, cs in LANGUAGES.values() for c in cs}))
    matrix = np.zeros((len(LANGUAGES), len(countries)))
    for li, (_, cs) in enumerate(LANGUAGES.values()):
        for country, weight in cs.items():
            matrix[li, countries.index(country)] = weight
    return countries, matrix / matrix.sum(axis=1, keepdims=True)
