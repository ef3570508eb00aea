"""The 3D SIM forward model: pinned to an acquisition nstm did not write, and its properties.

`tests/data/sim3d-convention-check.npz` (README beside it) is a static bead sample, three-beam
SIM, 3 orientations x 5 phases, simulated by code outside nstm with its ground truth. What it
pins, and how (found by fitting, each step to float32 rounding):

* ``gt_volume`` is the beads of ``gt_bead_pos_um`` as voxel-integrated Gaussians (sigma 22.4
  nm, random brightness) on the zoom-2 output grid, output voxel ``(z, j, i)`` at ``(z z_step,
  j pixel / 2, i pixel / 2)`` µm: raw pixel ``i`` is output pixel ``2 i``.
* ``gt_psf`` is the scalar Debye PSF (aplanatic ``cos^-1/2``) point-sampled on a periodic
  64 x 64 raw grid times the centred camera-pixel box ``sinc(p kx) sinc(p ky)``.
* ``raw`` is that PSF computed on the simulator's own padded grid (16 raw pixels of padding on
  each side, periodic over 96 raw pixels) and over the planes the stack needs (``gt_psf``'s 8
  planes reach only -4..3: too short, 15 % off), convolved with ``gt_volume`` plus the beads
  in the padding (their brightness is not in the file: fitted to the phase-averaged stacks),
  the pattern ``exp(i m (2 pi k0 . r + phi))`` with ``r`` from raw voxel (0, 0, 0),
  ``amp = 0.8 (2/3, 1/3)``, the first orders' ``cos(2 pi kz0 dz)``, sampled at raw pixel
  centres, plus 10 counts.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf
from sim3d_check import CHECK

from nstm.systems.sim3d.bands import (
    band_otfs_from_psf,
    band_otfs_on_grid,
    pixel_transfer,
    three_beam_amplitudes,
)
from nstm.systems.sim3d.forward import (
    SIMGrid,
    check_k0,
    predict_plane,
    predict_stack,
    simulate_raw,
    slab_transfer,
)
from nstm.systems.sim3d.otf import widefield_psf

DATA = CHECK
BACKGROUND = 10.0  # counts, in every raw value (the file's README)
BORDER = 8  # raw pixels left out of the "interior" error
BEAD_SIGMA_UM = np.sqrt(5e-4)  # the beads' Gaussian (22.4 nm), fitted to gt_volume
# The simulator's padded grid: periodic over 96 raw pixels, 16 planes (fitted: 64 or 128 raw
# pixels miss the phase-averaged stacks by 1 %, 96 matches them to 5e-6).
PAD_YX, PAD_Z = 16, 4


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA) as archive:
        return {key: archive[key] for key in archive.files}


def optics(ref):
    return dict(
        na=float(ref["na"]),
        n_immersion=float(ref["n_immersion"]),
        wavelength_um=float(ref["wavelength_em"]),
        z_step_um=float(ref["z_step"]),
    )


def render_beads(positions, planes_um, rows_um, cols_um):
    """Each bead as a Gaussian integrated over the voxels, (beads, Z, Y, X) of unit mass."""

    def box(grid, centre, width):
        edges = (grid[None, :] - centre[:, None]) / (np.sqrt(2) * BEAD_SIGMA_UM)
        half = width / (2 * np.sqrt(2) * BEAD_SIGMA_UM)
        return 0.5 * (erf(edges + half) - erf(edges - half))

    z = box(planes_um, positions[:, 0], planes_um[1] - planes_um[0])
    y = box(rows_um, positions[:, 1], rows_um[1] - rows_um[0])
    x = box(cols_um, positions[:, 2], cols_um[1] - cols_um[0])
    return z[:, :, None, None] * y[:, None, :, None] * x[:, None, None, :]


def relative_errors(prediction, raw):
    """Relative L2 error (whole, interior) of prediction + background against raw."""
    residual = prediction + BACKGROUND - raw
    signal = raw - BACKGROUND
    inner = (..., slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    whole = np.linalg.norm(residual) / np.linalg.norm(signal)
    interior = np.linalg.norm(residual[inner]) / np.linalg.norm(signal[inner])
    return whole, interior


def fit_scale(prediction, raw):
    """The one free scale: least squares of prediction against raw - background."""
    signal = (raw - BACKGROUND).ravel()
    return float(prediction.ravel() @ signal / (prediction.ravel() @ prediction.ravel()))


@pytest.fixture(scope="module")
def scene(ref):
    """The file's sample on the simulator's padded grid, and its band OTFs."""
    pixel, dz = float(ref["pixel_size"]), float(ref["z_step"])
    grid = SIMGrid.padded(
        ref["raw"].shape[2:], pad_z=PAD_Z, pad_yx=PAD_YX, pixel_size_um=pixel, z_step_um=dz
    )
    nz, ny, nx = grid.padded_shape
    psf = widefield_psf(
        (nz, ny // 2, nx // 2),
        pixel_size_um=pixel,
        **optics(ref),
        integrate_pixel=True,
        periodic=True,
    )
    kz0 = float(ref["gt_kz0"])
    otfs = band_otfs_on_grid(
        psf,
        grid.padded_shape,
        zoom=2,
        kz0=kz0,
        z_step_um=dz,
        pixel_size_um=pixel,
        pixel_integrated=True,
    )
    density = np.zeros(grid.padded_shape)
    density[grid.fov] = ref["gt_volume"]
    # The beads in the padding, their brightness fitted to the phase average (orders +-1, +-2
    # cancel over five equally spaced phases), where order 0's OTF alone acts.
    planes = (np.arange(nz) - grid.origin[0]) * dz
    rows, cols = grid.lateral_positions_um()
    beads = render_beads(ref["gt_bead_pos_um"].astype(np.float64), planes, rows, cols)
    outside = (beads[(slice(None), *grid.fov)].sum(axis=(1, 2, 3)) < 1e-3) & (
        beads.sum(axis=(1, 2, 3)) > 1e-3
    )
    sources = np.concatenate([density[None], beads[outside]])
    z, y, x = grid.raw_shape
    oz, oy, ox = grid.origin
    sample = (slice(None), slice(oz, oz + z), slice(oy, oy + 2 * y, 2), slice(ox, ox + 2 * x, 2))
    images = np.fft.ifftn(otfs[0] * np.fft.fftn(sources, axes=(1, 2, 3)), axes=(1, 2, 3))
    columns = images.real[sample].reshape(len(sources), -1).T
    widefield = (ref["raw"] - BACKGROUND).mean(axis=(0, 1)).ravel()
    weights = np.linalg.lstsq(columns, widefield, rcond=None)[0]
    density += np.tensordot(weights[1:] / weights[0], beads[outside], axes=1)
    return {"grid": grid, "otfs": otfs, "density": density, "kz0": kz0, "psf": psf}


def jax_stacks(density, otfs, k0, phases, amplitudes, grid):
    forward = jax.jit(predict_stack, static_argnums=5)
    density = jnp.asarray(density, jnp.float32)
    otfs = jnp.asarray(otfs, jnp.complex64)
    return np.array(
        [
            [
                forward(
                    density,
                    otfs,
                    jnp.asarray(k0[d], jnp.float32),
                    jnp.float32(phase),
                    jnp.asarray(amplitudes[d]),
                    grid,
                )
                for phase in phases[d]
            ]
            for d in range(len(k0))
        ],
        dtype=np.float64,
    )


# ----------------------------------------------------------------- the convention file


def test_beads_sit_on_the_output_grid_as_documented(ref):
    # Raw pixel i is output pixel 2 i, plane z at z * z_step, raw voxel (0, 0, 0) at the origin:
    # the beads rendered there reproduce gt_volume to float32 rounding (masses fitted); half an
    # output pixel off, they do not.
    volume = ref["gt_volume"].astype(np.float64)
    nz, ny, nx = volume.shape
    dz, spacing = float(ref["z_step"]), float(ref["pixel_size"]) / 2
    positions = ref["gt_bead_pos_um"].astype(np.float64)
    for shift, matches in ((0.0, True), (spacing / 2, False)):
        beads = render_beads(
            positions,
            np.arange(nz) * dz,
            np.arange(ny) * spacing + shift,
            np.arange(nx) * spacing + shift,
        )
        columns = beads.reshape(len(beads), -1).T
        masses = np.linalg.lstsq(columns, volume.ravel(), rcond=None)[0]
        error = np.abs(columns @ masses - volume.ravel()).max() / volume.max()
        assert (error < 1e-5) if matches else (error > 0.1)


def test_file_psf_is_the_point_psf_times_the_centred_pixel_box(ref):
    psf = ref["gt_psf"].astype(np.float64)
    point = widefield_psf(
        psf.shape, pixel_size_um=float(ref["pixel_size"]), **optics(ref), periodic=True
    )
    box = pixel_transfer(psf.shape[1:], zoom=1, pixel_size_um=float(ref["pixel_size"]))
    integrated = np.fft.fftshift(
        np.fft.ifft2(np.fft.fft2(np.fft.ifftshift(point, axes=(1, 2))) * box).real, axes=(1, 2)
    )
    integrated /= integrated.sum()
    assert np.abs(integrated - psf).max() < 1e-6 * psf.max()
    assert np.abs(point - psf).max() > 0.03 * psf.max()  # without the box: off


@pytest.mark.parametrize("form", ["numpy", "jax"])
def test_forward_reproduces_the_files_raw_stacks(ref, scene, form):
    grid, raw = scene["grid"], ref["raw"].astype(np.float64)
    amplitudes = three_beam_amplitudes(float(ref["gt_modulation"]), len(ref["gt_k0"]))
    args = (scene["density"], scene["otfs"])
    if form == "numpy":
        stacks = simulate_raw(
            *args, grid, k0=ref["gt_k0"], phases=ref["gt_phases"], amplitudes=amplitudes
        )
    else:
        stacks = jax_stacks(*args, ref["gt_k0"], ref["gt_phases"], amplitudes, grid)
    scale = fit_scale(stacks, raw)
    whole, interior = relative_errors(scale * stacks, raw)
    print(f"{form}: relative error whole {whole:.2e}, interior {interior:.2e}")
    assert whole < 2e-5 and interior < 5e-6
    # The README: the brightest expected pixel is 1000 counts above the background.
    assert abs(scale * stacks.max() - 1000) < 0.05


def test_order_amplitudes_are_the_depth_times_two_thirds_and_one_third(ref, scene):
    # Free amplitudes for the three orders, fitted by least squares: amp_1 / amp_0 and
    # amp_2 / amp_0 are gt_modulation * (2/3, 1/3), not gt_modulation * (1, 1) or squared.
    grid, raw = scene["grid"], ref["raw"].astype(np.float64)
    args = dict(k0=ref["gt_k0"], phases=ref["gt_phases"])
    base = simulate_raw(scene["density"], scene["otfs"], grid, amplitudes=[0.0, 0.0], **args)
    first = simulate_raw(scene["density"], scene["otfs"], grid, amplitudes=[1.0, 0.0], **args)
    second = simulate_raw(scene["density"], scene["otfs"], grid, amplitudes=[0.0, 1.0], **args)
    columns = np.stack([base, first - base, second - base], axis=-1).reshape(-1, 3)
    c = np.linalg.lstsq(columns, (raw - BACKGROUND).ravel(), rcond=None)[0]
    depth = float(ref["gt_modulation"])
    print(f"fitted amp_1, amp_2: {c[1] / c[0]:.6f}, {c[2] / c[0]:.6f}")
    np.testing.assert_allclose(c[1:] / c[0], [2 * depth / 3, depth / 3], rtol=1e-4)
    np.testing.assert_allclose(three_beam_amplitudes(depth), c[1:] / c[0], rtol=1e-4)


def _swap_k0(ref, otfs, grid):
    return ref["gt_k0"][:, ::-1], ref["gt_phases"], otfs


def _negate_phases(ref, otfs, grid):
    return ref["gt_k0"], -ref["gt_phases"], otfs


def _off_centre_pixel(ref, otfs, grid):
    # The mean of output pixels 2 i and 2 i + 1: a box centred a quarter raw pixel away.
    ky, kx = (np.fft.fftfreq(n, grid.output_pixel_um) for n in grid.padded_shape[1:])
    shift = grid.output_pixel_um / 2
    ramp = np.exp(2j * np.pi * shift * (ky[:, None] + kx[None, :]))
    return ref["gt_k0"], ref["gt_phases"], otfs * ramp


def _centre_origin(ref, otfs, grid):
    # The original NSTM's origin: the centre pixel of the field of view, not raw voxel 0.
    centre = np.array(ref["raw"].shape[-2:]) // 2 * float(ref["pixel_size"])
    phases = ref["gt_phases"] - 2 * np.pi * (ref["gt_k0"] @ centre)[:, None]
    return ref["gt_k0"], phases, otfs


@pytest.mark.parametrize(
    "variant, floor",
    [(_swap_k0, 0.3), (_negate_phases, 0.3), (_off_centre_pixel, 0.1), (_centre_origin, 0.3)],
)
def test_other_conventions_miss_the_files_raw_stacks(ref, scene, variant, floor):
    grid, raw = scene["grid"], ref["raw"].astype(np.float64)
    k0, phases, otfs = variant(ref, scene["otfs"], grid)
    amplitudes = three_beam_amplitudes(float(ref["gt_modulation"]))
    stacks = simulate_raw(scene["density"], otfs, grid, k0=k0, phases=phases, amplitudes=amplitudes)
    whole, _ = relative_errors(fit_scale(stacks, raw) * stacks, raw)
    print(f"{variant.__name__}: relative error {whole:.3f}")
    assert whole > floor


def test_file_psf_alone_is_too_short_for_the_stack(ref, scene):
    # gt_psf holds planes dz = -4..3 only, where the stack's beads need -7..7: the simulator
    # computed its PSF over more planes (and periodic on its own padded grid).
    grid, raw = scene["grid"], ref["raw"].astype(np.float64)
    otfs = band_otfs_on_grid(
        ref["gt_psf"],
        grid.padded_shape,
        zoom=2,
        kz0=scene["kz0"],
        z_step_um=float(ref["z_step"]),
        pixel_size_um=float(ref["pixel_size"]),
        pixel_integrated=True,
    )
    stacks = simulate_raw(
        scene["density"],
        otfs,
        grid,
        k0=ref["gt_k0"],
        phases=ref["gt_phases"],
        amplitudes=three_beam_amplitudes(float(ref["gt_modulation"])),
    )
    whole, interior = relative_errors(fit_scale(stacks, raw) * stacks, raw)
    print(f"gt_psf: relative error whole {whole:.3f}, interior {interior:.3f}")
    assert interior > 0.05


# ----------------------------------------------------------------- properties


def small_grid(zoom=2, raw_shape=(3, 5, 4), pad_z=2, pad_yx=2):
    return SIMGrid.padded(
        raw_shape, pad_z=pad_z, pad_yx=pad_yx, pixel_size_um=0.1, z_step_um=0.15, zoom=zoom
    )


def test_numpy_and_jax_forms_agree_for_any_otfs_and_amplitudes():
    # Arbitrary complex OTF arrays, complex amplitudes, zoom 3 and odd sizes: both forms define
    # order -m by conj OTF_m(-k) and conj(amp_m), the JAX one folds +-m and the camera sampling.
    rng = np.random.default_rng(0)
    grid = small_grid(zoom=3)
    density = rng.random(grid.padded_shape)
    otfs = rng.normal(size=(3, *grid.padded_shape)) + 1j * rng.normal(size=(3, *grid.padded_shape))
    k0 = np.array([[1.3, -2.1], [0.4, 2.6]])
    phases = rng.uniform(0, 2 * np.pi, (2, 3))
    amplitudes = np.array([[0.6 + 0.2j, 0.3 - 0.1j], [0.5, 0.25]])
    reference = simulate_raw(density, otfs, grid, k0=k0, phases=phases, amplitudes=amplitudes)
    stacks = jax_stacks(density, otfs, k0, phases, amplitudes, grid)
    assert stacks.shape == reference.shape == (2, 3, *grid.raw_shape)
    assert np.abs(stacks - reference).max() < 1e-5 * np.abs(reference).max()


def test_forward_is_the_sum_over_emitters_of_pattern_times_band_psf():
    # Brute force in real space: every voxel of the padded grid an emitter, each raw pixel the
    # sum over emitters of density * sum_m amp_m exp(i m (2 pi k0 . r_e + phi)) * h_|m|(offset),
    # h_0 = h_2 = psf, h_1 = psf cos(2 pi kz0 dz), dz = image plane minus emitter plane. The
    # PSF reaches +-1 plane and +-2 output pixels, within the padding: no wrap-around.
    rng = np.random.default_rng(1)
    grid = small_grid(zoom=2, raw_shape=(2, 3, 3), pad_z=1, pad_yx=2)
    kz0, dz = 1.3, grid.z_step_um
    kernel = rng.random((3, 5, 5))
    placed = np.zeros(grid.padded_shape)
    centre = tuple(n // 2 for n in grid.padded_shape)
    placed[
        centre[0] - 1 : centre[0] + 2, centre[1] - 2 : centre[1] + 3, centre[2] - 2 : centre[2] + 3
    ] = kernel
    otfs = band_otfs_from_psf(placed, kz0=kz0, z_step_um=dz)
    kernel = kernel / kernel.sum()
    bands = [kernel, kernel * np.cos(2 * np.pi * kz0 * dz * np.arange(-1, 2))[:, None, None]]
    bands.append(kernel)
    density = rng.random(grid.padded_shape) * (rng.random(grid.padded_shape) < 0.3)
    k0, phase, amplitudes = np.array([2.1, -1.4]), 0.7, np.array([0.55, 0.3])

    rows, cols = grid.lateral_positions_um()
    expected = np.zeros(grid.raw_shape)
    for ze, je, ie in zip(*np.nonzero(density), strict=True):
        theta = 2 * np.pi * (k0 @ [rows[je], cols[ie]]) + phase
        weights = [1.0, 2 * amplitudes[0] * np.cos(theta), 2 * amplitudes[1] * np.cos(2 * theta)]
        for z, y, x in np.ndindex(*grid.raw_shape):
            offset = (
                grid.origin[0] + z - ze,
                grid.origin[1] + 2 * y - je,
                grid.origin[2] + 2 * x - ie,
            )
            if abs(offset[0]) <= 1 and max(abs(offset[1]), abs(offset[2])) <= 2:
                index = (offset[0] + 1, offset[1] + 2, offset[2] + 2)
                expected[z, y, x] += density[ze, je, ie] * sum(
                    w * h[index] for w, h in zip(weights, bands, strict=True)
                )
    reference = simulate_raw(
        density, otfs, grid, k0=k0[None], phases=[[phase]], amplitudes=amplitudes
    )[0, 0]
    stack = jax_stacks(density, otfs, k0[None], [[phase]], amplitudes[None], grid)[0, 0]
    np.testing.assert_allclose(reference, expected, rtol=1e-10, atol=1e-12)
    assert np.abs(stack - expected).max() < 1e-5 * np.abs(expected).max()


def test_forward_is_linear_and_its_vjp_is_its_adjoint():
    rng = np.random.default_rng(2)
    grid = small_grid()
    otfs = jnp.asarray(
        band_otfs_on_grid(
            rng.random((3, 7, 7)),
            grid.padded_shape,
            zoom=2,
            kz0=1.2,
            z_step_um=grid.z_step_um,
            pixel_size_um=grid.pixel_size_um,
            pixel_integrated=False,
        ),
        jnp.complex64,
    )
    k0, phase, amplitudes = jnp.array([1.1, 2.3]), jnp.float32(0.4), jnp.array([0.5, 0.25])

    def forward(x):
        return predict_stack(x, otfs, k0, phase, amplitudes, grid)

    x1, x2 = (jnp.asarray(rng.normal(size=grid.padded_shape), jnp.float32) for _ in range(2))
    y = jnp.asarray(rng.normal(size=grid.raw_shape), jnp.float32)
    combined = forward(2.0 * x1 - 3.0 * x2)
    separate = 2.0 * forward(x1) - 3.0 * forward(x2)
    assert jnp.abs(combined - separate).max() < 1e-5 * jnp.abs(separate).max()
    value, vjp = jax.vjp(forward, x1)
    (adjoint,) = vjp(y)
    lhs, rhs = float(jnp.vdot(value, y)), float(jnp.vdot(x1, adjoint))
    assert abs(lhs - rhs) < 1e-5 * np.sqrt(float(jnp.vdot(value, value) * jnp.vdot(y, y)))


def test_plane_from_its_slab_equals_that_plane_of_the_stack():
    # A computed PSF five planes deep (reach 2) on a grid padded by 2 planes: the slab of
    # 5 planes around each raw plane predicts it as the whole-grid forward does.
    grid = small_grid(raw_shape=(4, 8, 8), pad_z=2, pad_yx=4)
    psf = widefield_psf(
        (5, 16, 16),
        pixel_size_um=grid.pixel_size_um,
        z_step_um=grid.z_step_um,
        na=1.2,
        n_immersion=1.33,
        wavelength_um=0.52,
    )
    otfs = band_otfs_on_grid(
        psf,
        grid.padded_shape,
        zoom=2,
        kz0=0.9,
        z_step_um=grid.z_step_um,
        pixel_size_um=grid.pixel_size_um,
        pixel_integrated=False,
    )
    otfs = jnp.asarray(otfs, jnp.complex64)
    density = jnp.asarray(np.random.default_rng(3).random(grid.padded_shape), jnp.float32)
    k0, phase, amplitudes = jnp.array([1.5, -1.9]), jnp.float32(2.0), jnp.array([0.6, 0.3])
    stack = predict_stack(density, otfs, k0, phase, amplitudes, grid)
    slab_otfs = slab_transfer(otfs, 2)
    for plane in range(grid.raw_shape[0]):
        slab = density[grid.slab(plane, 2)]
        predicted = predict_plane(slab, slab_otfs, k0, phase, amplitudes, grid)
        assert jnp.abs(predicted - stack[plane]).max() < 1e-5 * jnp.abs(stack).max()


@pytest.mark.parametrize(
    "zoom, raw, grid", [(2, (5, 9, 8), (7, 30, 22)), (3, (4, 7, 7), (3, 15, 12))]
)
def test_psf_on_the_output_grid_keeps_the_camera_samples(zoom, raw, grid):
    # Fourier interpolation to the output grid, then zero-padded or cropped about the focus:
    # output pixel zoom * i is raw pixel i of the PSF (normalized), where both grids hold it.
    rng = np.random.default_rng(4)
    psf = rng.random(raw)
    otfs = band_otfs_on_grid(
        psf, grid, zoom=zoom, kz0=0.0, z_step_um=0.1, pixel_size_um=0.1, pixel_integrated=True
    )
    fine = np.fft.ifftn(otfs[0]).real  # unshifted: the focus at index 0
    assert np.allclose(otfs[1], otfs[0]) and np.allclose(otfs[2], otfs[0])  # kz0 = 0
    held = [min(n, g // f) for n, g, f in zip(raw, grid, (1, zoom, zoom), strict=True)]
    signed = [np.fft.fftfreq(h, 1 / h).astype(int) for h in held]
    camera = fine[
        np.ix_(signed[0] % grid[0], signed[1] * zoom % grid[1], signed[2] * zoom % grid[2])
    ]
    source = np.fft.ifftshift(psf)[np.ix_(*(s % n for s, n in zip(signed, raw, strict=True)))]
    ratio = camera / source
    assert np.allclose(ratio, ratio.flat[0], rtol=1e-9)


# ----------------------------------------------------------------- validation


def _grid(**changes):
    fields = dict(
        raw_shape=(2, 4, 4),
        padded_shape=(4, 12, 12),
        origin=(1, 2, 2),
        pixel_size_um=0.1,
        z_step_um=0.2,
        zoom=2,
    )
    return SIMGrid(**(fields | changes))


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"zoom": 2.5}, "zoom"),
        ({"zoom": 0}, "zoom"),
        ({"origin": (1, 3, 2)}, "origin"),
        ({"origin": (1, 2)}, "origin"),
        ({"padded_shape": (4, 13, 12)}, "padded_shape"),
        ({"origin": (3, 2, 2)}, "origin, padded_shape"),
        ({"origin": (1, 6, 2)}, "origin, padded_shape"),
        ({"pixel_size_um": -0.1}, "pixel_size_um"),
        ({"raw_shape": (2, 4)}, "raw_shape"),
    ],
)
def test_grid_rejects_bad_geometry_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        _grid(**changes)


def test_grid_slab_must_fit_the_padded_planes():
    grid = _grid(padded_shape=(6, 12, 12))
    assert grid.slab(0, 1) == slice(0, 3) and grid.slab(1, 2) == slice(0, 5)
    with pytest.raises(ValueError, match="^half_width:.*pad z by at least 2"):
        grid.slab(0, 2)
    with pytest.raises(ValueError, match="^half_width: a slab of 2 \\* 3 \\+ 1 planes"):
        grid.slab(1, 3)
    with pytest.raises(ValueError, match="^plane:"):
        grid.slab(2, 0)


@pytest.mark.parametrize(
    "k0, kwargs, message",
    [
        ([1.0, 2.0], {}, "k0: expected \\(orientations, 2\\)"),
        ([[0.0, 0.0]], {}, "k0: orientation 0 has \\|k0\\| = 0"),
        ([[np.nan, 1.0]], {}, "k0: expected finite"),
        (
            [[1.0, 1.0], [2.5, 2.5]],
            {"na": 1.4, "wavelength_ex_um": 0.488},
            "k0: orientation 1 .*passband",
        ),
        ([[1.0, 3.0]], {"grid": _grid(pixel_size_um=0.4)}, "k0: the second order"),
        ([[1.0, 1.0]], {"na": 1.4}, "na, wavelength_ex_um"),
    ],
)
def test_k0_validation_names_the_field(k0, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_k0(k0, **kwargs)


def test_k0_within_the_passband_passes():
    k0 = check_k0([[0.73, 2.27]], na=1.4, wavelength_ex_um=0.488, grid=_grid(pixel_size_um=0.08))
    assert k0.dtype == np.float64 and k0.shape == (1, 2)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"density": np.zeros((4, 12, 10))}, "^density: expected the padded output grid"),
        ({"density": np.full((4, 12, 12), np.nan)}, "^density: expected finite"),
        ({"band_otfs": np.ones((2, 4, 12, 12))}, "^band_otfs: expected \\(3, Zp, Yp, Xp\\)"),
        ({"phases": np.zeros((2, 3))}, "^phases: expected \\(1, phases\\)"),
        ({"amplitudes": np.zeros(3)}, "^amplitudes: expected"),
        ({"k0": np.array([[6.0, 0.0]])}, "^k0: the second order"),
    ],
)
def test_simulate_raw_validation_names_the_field(changes, message):
    args = (
        dict(
            density=np.zeros((4, 12, 12)),
            band_otfs=np.ones((3, 4, 12, 12)),
            k0=np.array([[1.0, 0.5]]),
            phases=np.zeros((1, 3)),
            amplitudes=np.array([0.5, 0.25]),
        )
        | changes
    )
    density, otfs = args.pop("density"), args.pop("band_otfs")
    with pytest.raises(ValueError, match=message):
        simulate_raw(density, otfs, _grid(), **args)


def test_jax_forms_validate_shapes_naming_the_field():
    grid = _grid()
    otfs = jnp.ones((3, *grid.padded_shape), jnp.complex64)
    k0, phase, amplitudes = jnp.array([1.0, 0.5]), jnp.float32(0.0), jnp.array([0.5, 0.25])
    with pytest.raises(ValueError, match="^density:"):
        predict_stack(jnp.zeros((4, 12, 10)), otfs, k0, phase, amplitudes, grid)
    with pytest.raises(ValueError, match="^k0, phase, amplitudes:"):
        predict_stack(jnp.zeros(grid.padded_shape), otfs, k0[None], phase, amplitudes, grid)
    slab_otfs = slab_transfer(otfs, 1)
    with pytest.raises(ValueError, match="^slab:"):
        predict_plane(jnp.zeros((2, 12, 12)), slab_otfs, k0, phase, amplitudes, grid)
    with pytest.raises(ValueError, match="^half_width:"):
        slab_transfer(otfs, 2)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: three_beam_amplitudes(-0.5), "^modulation: expected finite depths"),
        (lambda: three_beam_amplitudes(np.ones((3, 3))), "^modulation: expected a depth"),
        (lambda: three_beam_amplitudes([0.8, 0.9], 3), "^modulation: expected 3 orientations"),
        (lambda: pixel_transfer((8, 8), zoom=1.5, pixel_size_um=0.1), "^zoom:"),
        (
            lambda: band_otfs_on_grid(
                np.ones((4, 4)),
                (3, 8, 8),
                zoom=2,
                kz0=1.0,
                z_step_um=0.1,
                pixel_size_um=0.1,
                pixel_integrated=True,
            ),
            "^psf: expected a 3D array",
        ),
    ],
)
def test_band_helpers_validate_naming_the_field(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_three_beam_amplitudes_broadcast_per_orientation_and_order():
    np.testing.assert_allclose(three_beam_amplitudes(0.8), [0.8 * 2 / 3, 0.8 / 3])
    np.testing.assert_allclose(three_beam_amplitudes([1.0, 0.5]), [[2 / 3, 1 / 3], [1 / 3, 1 / 6]])
    np.testing.assert_allclose(three_beam_amplitudes([[1.0, 0.5]], 1), [[2 / 3, 1 / 6]])
    assert three_beam_amplitudes(1.0, 3).shape == (3, 2)
