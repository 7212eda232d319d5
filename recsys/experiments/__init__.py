"""Online experiments' ground: definitions (:mod:`.definitions`), the versioned hash
(:mod:`.hashing`) and assignment (:mod:`.assignment`), shared by the recommendation service,
the Beam jobs that join outcomes and the simulator; the analysis' statistics
(:mod:`.statistics`) and team-draft interleaving (:mod:`.interleaving`)."""

from recsys.experiments.assignment import Assigner, Assignment
from recsys.experiments.definitions import (
    Arm,
    ArmChanges,
    Experiment,
    Experiments,
    Holdout,
    Targeting,
    load_experiments,
    parse_experiments,
)
from recsys.experiments.hashing import HASH_VERSIONS, unit_interval

__all__ = ["Assigner", "Assignment", "Arm", "ArmChanges", "Experiment", "Experiments",
           "Holdout", "Targeting", "load_experiments", "parse_experiments", "HASH_VERSIONS",
           "unit_interval"]
