"""Writing results every system shares: TIFF stacks, figures, videos. Each system reads its
own data layout (``nstm.systems.<name>``)."""

from .outputs import save_comparison_figure as save_comparison_figure
from .outputs import save_motion_figure as save_motion_figure
from .outputs import save_tiff as save_tiff
from .outputs import save_video as save_video

__all__ = ["save_comparison_figure", "save_motion_figure", "save_tiff", "save_video"]
