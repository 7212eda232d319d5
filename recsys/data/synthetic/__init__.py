"""A simulated content platform: users with tastes, a growing catalogue, sessions of events."""

from recsys.data.synthetic.config import SyntheticConfig
from recsys.data.synthetic.generator import GenerationReport, SyntheticPlatform, generate

__all__ = ["GenerationReport", "SyntheticConfig", "SyntheticPlatform", "generate"]
