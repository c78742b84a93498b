"""Distillation objectives, one module per method family. Importing this package registers them."""

from . import alp, annealing, ce, ckd, dih, internal, kd, pkd, rail, tinybert, universal  # noqa: F401  (registration)
from .base import BuildContext, Needs, Objective
from .registry import OBJECTIVES, build_objective, get_objective_class

__all__ = ["OBJECTIVES", "BuildContext", "Needs", "Objective", "build_objective", "get_objective_class"]
