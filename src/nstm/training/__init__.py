"""Training: the jitted step, the fit loop, checkpoints."""

from .checkpoint import load_checkpoint as load_checkpoint
from .checkpoint import save_checkpoint as save_checkpoint
from .engine import FitResult as FitResult
from .engine import NonFiniteLossError as NonFiniteLossError
from .engine import TrainingInterrupted as TrainingInterrupted
from .engine import fit as fit
from .engine import make_fit_step as make_fit_step
from .engine import make_optimizer as make_optimizer
from .engine import step_loss as step_loss
