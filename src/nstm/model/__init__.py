"""The space-time model: MLPs, the motion and scene networks, and the query API."""

from .mlp import MLP as MLP
from .spacetime import SpaceTimeModel as SpaceTimeModel
from .spacetime import make_model as make_model
from .spacetime import motion_fields as motion_fields
from .spacetime import param_labels as param_labels
from .spacetime import render_scenes as render_scenes
