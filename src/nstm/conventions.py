"""The conventions every part of nstm shares (``docs/conventions.md`` says the same).

Arrays and axes
    Spatial axes ``(y, x)`` or ``(z, y, x)``, C order; pixel ``i`` has its centre at coordinate
    ``i``. Stacks put time first, ``(frames, [Z,] H, W)``; rendered scenes put channels last,
    ``(times, *grid, channels)``; outputs are one array per named channel, ``(times, *fov)``.
    Output TIFFs are OME-TIFF with named axes and the pixel size in micrometres.
Coordinates of the model
    Pixel coordinates of the rendered grid (possibly padded beyond ``system.fov``). A render box
    (``render_origins``, ``render_shape``) uses the grid's coordinates.
Time
    Normalized to [-1, 1] over the acquisition. ``render_times`` (measurements, renders) are
    what each measurement depends on, ``output_times`` where the reconstruction is written.
Motion
    Pixels of the grid, ``(dy, dx)`` or ``(dz, dy, dx)``, pull convention: the scene at time t
    at pixel r is the canonical scene at ``r + M(r, t)``.
Units
    Lengths in micrometres (``*_um``), frequencies in cycles/µm (optics) or cycles/pixel (model
    sizing), phase in radians, DPC absorption as natural-log amplitude.
Fourier transforms
    Unshifted ``numpy.fft`` layout (DC at index 0), forward kernel ``exp(-i 2 pi k n / N)``,
    plane waves ``exp(+i 2 pi f . r)``; helpers in :mod:`nstm.fourier`.
Randomness
    Every draw comes from a seed in a config; resumed runs draw what uninterrupted ones would.

A system's own conventions (its data layout, DPC's LED source maps) live in its folder,
``nstm/systems/<name>/``.
"""

AXES_2D = ("y", "x")
"""Spatial axis order of 2D arrays."""
AXES_3D = ("z", "y", "x")
"""Spatial axis order of 3D arrays."""
TIME_RANGE = (-1.0, 1.0)
"""Normalized times span this interval over an acquisition."""
LENGTH_UNIT = "µm"
"""Unit of every physical length (pixel sizes, z steps, wavelengths)."""
