"""Small DPC problems shared by the tests of the conventional reconstruction: optics, transfer
functions of half-disc sources, and the dense matrix of the linear model."""

import numpy as np

from nstm.optics import pupil
from nstm.systems.dpc.optics import apply_transfer_functions, dpc_sources, transfer_functions

OPTICS = dict(wavelength_um=0.525, pixel_size_um=0.454)
NA = 0.25


def dpc_transfer_functions(shape):
    """Absorption and phase transfer functions of the four half discs at NA 0.25."""
    sources = dpc_sources(shape, na_illum=NA, **OPTICS)
    return transfer_functions(sources, pupil(shape, na=NA, **OPTICS))


def dense_model(absorption_tf, phase_tf):
    """Dense matrix of the periodic linear model: columns are unit (mu, then phi) pixels, rows
    the frames' pixels (float64)."""
    _, height, width = absorption_tf.shape
    eye = np.eye(height * width).reshape(-1, height, width)
    zero = np.zeros((height, width))
    columns = [apply_transfer_functions(e, zero, absorption_tf, phase_tf) for e in eye]
    columns += [apply_transfer_functions(zero, e, absorption_tf, phase_tf) for e in eye]
    return np.stack([c.astype(np.float64).ravel() for c in columns], axis=1)
