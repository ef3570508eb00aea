"""Reading and writing what every system shares: OME-TIFF stacks with physical units, figures,
videos. Each system reads its own data layout (``nstm.systems.<name>``)."""

from .outputs import save_comparison_figure as save_comparison_figure
from .outputs import save_motion_figure as save_motion_figure
from .outputs import save_video as save_video
from .tiff import read_tiff_spacing_um as read_tiff_spacing_um
from .tiff import save_tiff as save_tiff

__all__ = [
    "read_tiff_spacing_um",
    "save_comparison_figure",
    "save_motion_figure",
    "save_tiff",
    "save_video",
]
