"""Reading measurements and writing results (TIFF stacks, figures, videos)."""

from .dpc_data import DPCData as DPCData
from .dpc_data import load_dpc as load_dpc
from .dpc_data import save_dpc as save_dpc
from .outputs import save_comparison_figure as save_comparison_figure
from .outputs import save_motion_figure as save_motion_figure
from .outputs import save_tiff as save_tiff
from .outputs import save_video as save_video

__all__ = [
    "DPCData",
    "load_dpc",
    "save_comparison_figure",
    "save_dpc",
    "save_motion_figure",
    "save_tiff",
    "save_video",
]
