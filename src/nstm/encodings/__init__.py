"""Coordinate encodings: multiresolution hash grids, Fourier features, annealing window."""

from .fourier import FourierFeatureEncoding as FourierFeatureEncoding
from .hashgrid import HASH_PRIMES as HASH_PRIMES
from .hashgrid import HashGridEncoding as HashGridEncoding
from .window import coarse_to_fine_window as coarse_to_fine_window

__all__ = [
    "HASH_PRIMES",
    "FourierFeatureEncoding",
    "HashGridEncoding",
    "coarse_to_fine_window",
]
