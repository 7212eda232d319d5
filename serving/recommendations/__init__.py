"""The recommendation service: retrieval -> ranking -> rules -> top N, with fallbacks."""
