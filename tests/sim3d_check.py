"""The 3D SIM convention-check acquisition (simulated by code we did not write, with its
answer; README beside it), shared by the SIM tests."""

from pathlib import Path

CHECK = Path(__file__).parent / "data" / "sim3d-convention-check.npz"
