"""3D structured illumination microscopy (three-beam SIM): everything specific to it.

* :mod:`.bands`: the conventions shared by the parts (coordinates, orders, band OTFs);
* :mod:`.otf`: the widefield PSF and OTFs from the microscope, measured OTF files;
* :mod:`.forward`: the forward model (NumPy reference and JAX);
* :mod:`.estimation`: band separation, pattern vector, phases and modulation from the data;
* :mod:`.wiener`: the conventional (generalized Wiener) reconstruction and bead widths;
* :mod:`.data`: the data layout; :mod:`.simulation`: a moving sample with ground truth;
* :mod:`.system`: the NSTM system (:class:`SIM3D`) and its config; ``SPEC``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...config import RunConfig, TrainConfig
from ..registry import Demo, DemoReport, Simulation, SystemSpec
from .data import SIMData as SIMData
from .data import load_sim as load_sim
from .data import save_sim as save_sim
from .simulation import SIM3DSimulationConfig as SIM3DSimulationConfig
from .simulation import simulate_sim3d as simulate_sim3d
from .system import SIM3D as SIM3D
from .system import SIM3DConfig as SIM3DConfig
from .system import load_system as load_system


def _describe(sim: SIM3DSimulationConfig) -> str:
    z, y, x = sim.shape
    return (
        f"{sim.orientations} x {sim.phases} raw SIM stacks of {z} x {y} x {x} voxels "
        f"({sim.phantom}, {sim.motion} motion up to {sim.max_displacement_px} px, "
        f"{sim.timing} timing)"
    )


def _demo_simulation(size: int, phantom: str | None) -> SIM3DSimulationConfig:
    chosen = {} if phantom is None else {"phantom": phantom}
    return SIM3DSimulationConfig(shape=(8, size, size), **chosen)


def bead_scores(volume, positions_um, spacing):
    """(median lateral FWHM nm, median localization error nm) of the isolated beads."""
    from .wiener import bead_fwhm, isolated_beads

    extent = np.asarray(volume.shape) * np.asarray(spacing)
    keep = isolated_beads(positions_um, extent)
    if not np.any(keep):
        return np.nan, np.nan
    widths = bead_fwhm(volume, positions_um[keep], spacing)
    error = np.linalg.norm(widths.center_um - positions_um[keep], axis=-1)
    return 1e3 * float(np.nanmedian(widths.lateral_um)), 1e3 * float(np.nanmedian(error))


def _demo_report(system: SIM3D, truth: dict, border: int, run: Path) -> DemoReport:
    """Bead widths and localization errors of NSTM (at each stack's time) and of the static
    Wiener and widefield reconstructions against the beads at that time."""
    if "bead_pos_um" not in truth:
        return DemoReport()
    with np.load(run / "reconstruction.npz") as recon, np.load(run / "baseline.npz") as base:
        nstm, wiener, widefield = recon["volume"], base["volume"], base["widefield"]
    spacing = system.spacing_um
    rows = {"lateral bead FWHM per stack (nm)": [], "bead localization error per stack (nm)": []}
    for name, volumes in (
        ("NSTM", nstm),
        ("Wiener (static)", [wiener] * len(nstm)),
        ("widefield", [widefield] * len(nstm)),
    ):
        scores = np.array(
            [
                bead_scores(v, p, spacing)
                for v, p in zip(volumes, truth["bead_pos_um"], strict=True)
            ]
        )
        rows["lateral bead FWHM per stack (nm)"].append((name, scores[:, 0]))
        rows["bead localization error per stack (nm)"].append((name, scores[:, 1]))
    metrics = {
        f"{title.split(' per')[0].replace(' ', '_')}_{label.split()[0].lower()}": values.tolist()
        for title, lines in rows.items()
        for label, values in lines
    }
    return DemoReport(metrics=metrics, rows=rows, baseline_label="Wiener (static)")


def _default() -> RunConfig:
    """The package defaults, with 3 of the raw stacks per step (each renders the whole padded
    volume, so fitting all 15 at once costs 5x as much per step) and 200 steps (beads reach the
    Wiener's resolution by then: benchmarks/README.md, sim3d_beads.py)."""
    return RunConfig(system=SIM3DConfig(), train=TrainConfig(steps=200, frames_per_step=3))


SPEC = SystemSpec(
    name="sim3d",
    config_cls=SIM3DConfig,
    load=load_system,
    description="3D structured illumination: a fluorescence volume from three-beam SIM stacks",
    data_help="raw stacks: .npz (keys raw (orientations, phases, Z, Y, X), pixel_size, z_step, "
    "wavelength_em, wavelength_ex, na, n_immersion, [times, background, k0, phases, "
    "modulation]) or a TIFF stack with --system.orientations and --system.phases",
    resume_may_change=("wiener",),
    presets={"default": _default},
    simulation=Simulation(
        config_cls=SIM3DSimulationConfig,
        simulate=simulate_sim3d,
        save=save_sim,
        describe=_describe,
    ),
    demo=Demo(simulation=_demo_simulation, min_size=16, default_size=32, report=_demo_report),
)
