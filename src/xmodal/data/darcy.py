r"""Darcy flow on the unit square, generated the way FNO's benchmark data were (Li et al., ICLR 2021).

The problem is the steady-state pressure equation of a porous medium,

.. math::

    -\nabla\cdot\big(a(x)\,\nabla u(x)\big) = f(x), \quad x\in(0,1)^2, \qquad u = 0 \text{ on } \partial(0,1)^2,

with forcing :math:`f \equiv 1` and a piecewise-constant permeability :math:`a = \psi(g)`, where
:math:`\psi(g) = 12` where :math:`g \ge 0` and :math:`3` elsewhere, and :math:`g` is a zero-mean Gaussian
random field with covariance :math:`\tau^{2\alpha-2}(-\Delta + \tau^2 I)^{-\alpha}` under Neumann boundary
conditions (:math:`\alpha = 2`, :math:`\tau = 3`).

**Sampling the field** (:func:`sample_grf`). The Neumann Laplacian's eigenfunctions are
:math:`\cos(k_1\pi x)\cos(k_2\pi y)` with eigenvalues :math:`\pi^2|k|^2`, so the Karhunen–Loève
expansion truncated to an ``s × s`` grid is

.. math::

    g = \mathrm{IDCT}_2\Big(s\,\tau^{\alpha-1}\,(\pi^2|k|^2 + \tau^2)^{-\alpha/2}\,\xi_k\Big),
    \quad \xi_k \sim \mathcal N(0, 1),\; \xi_0 := 0,

with the orthonormal inverse type-II DCT (MATLAB's ``idct2``; ``scipy.fft.idctn(..., norm="ortho")``),
exactly as FNO's ``GRF.m``. Only the sign of ``g`` matters for ``a``.

**Solving** (:func:`solve_darcy`). A cell-centred five-point finite-volume scheme on the nodes
:math:`x_{ij} = (i h, j h)`, :math:`h = 1/(s-1)`: the boundary nodes hold :math:`u = 0`, every interior
node balances the fluxes through its four faces,

.. math::

    \sum_{\text{faces } e} a_e\,\frac{u_P - u_{N_e}}{h^2} = f_P, \qquad
    a_e = \frac{2\,a_P\,a_{N_e}}{a_P + a_{N_e}} \text{ (harmonic mean)},

which is second-order accurate for smooth ``a`` and the standard choice for jumping coefficients.
The ``(s-2)^2`` unknowns form a sparse SPD system solved with ``scipy.sparse.linalg.spsolve``.

FNO generated its data at ``s = 421`` and subsampled every 5th node to ``85 × 85``; here the solve
is done on the ``85 × 85`` grid itself, so the solutions carry the discretisation error of that grid
(the inputs have the same statistics; the targets differ from FNO's by ``O(h)`` near the jumps).

Generated sets are cached as ``.npz`` under ``xmodal.cache.cache_dir("darcy")`` keyed by
``(n, resolution, seed, generator version)``, written atomically and read back without pickle.
Sample ``i`` of seed ``seed`` depends only on ``(seed, i)``, so a smaller set is a prefix of a larger one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from xmodal.cache import cache_dir
from xmodal.errors import XmodalError

__all__ = ["GENERATOR_VERSION", "sample_grf", "threshold_permeability", "solve_darcy", "generate_darcy",
           "darcy_cache_path"]

#: Bumped whenever the generator's output changes for a given (n, resolution, seed); part of the cache key.
GENERATOR_VERSION = 1
ALPHA = 2.0
TAU = 3.0
A_HIGH = 12.0
A_LOW = 3.0


def sample_grf(resolution: int, rng: np.random.Generator, alpha: float = ALPHA, tau: float = TAU) -> np.ndarray:
    """One zero-mean Gaussian random field on an ``resolution × resolution`` node grid (float64).

    Covariance ``τ^(2α-2) (-Δ + τ²)^(-α)`` with Neumann boundary conditions, sampled spectrally
    (see the module docstring); the constant mode is set to zero.
    """
    from scipy.fft import idctn

    s = int(resolution)
    k = np.arange(s, dtype=np.float64)
    k1, k2 = np.meshgrid(k, k, indexing="ij")
    coef = tau ** (alpha - 1) * (np.pi**2 * (k1**2 + k2**2) + tau**2) ** (-alpha / 2)
    modes = s * coef * rng.standard_normal((s, s))
    modes[0, 0] = 0.0
    return idctn(modes, type=2, norm="ortho")


def threshold_permeability(field: np.ndarray, high: float = A_HIGH, low: float = A_LOW) -> np.ndarray:
    """``high`` where ``field >= 0``, ``low`` elsewhere (FNO's piecewise-constant permeability)."""
    return np.where(field >= 0, high, low)


def solve_darcy(a: np.ndarray, f: float | np.ndarray = 1.0) -> np.ndarray:
    """Solve ``-∇·(a ∇u) = f`` on the unit square with ``u = 0`` on the boundary.

    Args:
        a: ``(s, s)`` positive coefficient at the grid nodes ``(i h, j h)``, ``h = 1/(s-1)``;
            axis 0 is ``x``, axis 1 is ``y``.
        f: the forcing, a scalar or an ``(s, s)`` array at the nodes (boundary values unused).

    Returns:
        ``(s, s)`` float64 solution at the nodes, zero on the boundary.

    Raises:
        XmodalError: ``a`` not square 2-D with ``s >= 3``, not finite, or not positive.
    """
    from scipy.sparse import diags
    from scipy.sparse.linalg import spsolve

    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 3:
        raise XmodalError(f"solve_darcy needs a square (s, s) coefficient with s >= 3, got shape {a.shape}")
    if not np.isfinite(a).all() or (a <= 0).any():
        raise XmodalError("solve_darcy needs a finite, strictly positive coefficient a")
    s = a.shape[0]
    m = s - 2
    h2 = (1.0 / (s - 1)) ** 2
    fx = 2 * a[:-1, :] * a[1:, :] / (a[:-1, :] + a[1:, :])  # face between nodes (i, j) and (i+1, j)
    fy = 2 * a[:, :-1] * a[:, 1:] / (a[:, :-1] + a[:, 1:])  # face between nodes (i, j) and (i, j+1)
    west = fx[:-1, 1:-1]  # faces of interior node (i, j): (i-1/2, j) …
    east = fx[1:, 1:-1]  # … (i+1/2, j)
    south = fy[1:-1, :-1]  # (i, j-1/2)
    north = fy[1:-1, 1:]  # (i, j+1/2)
    diag = (west + east + south + north).ravel()
    # unknowns are the interior nodes flattened row-major: index (i-1)*m + (j-1)
    off_y = -north.copy()
    off_y[:, -1] = 0.0  # the last node of a row has no interior north neighbour
    off_x = -east[:-1, :]
    A = diags(
        [diag, off_y.ravel()[:-1], off_y.ravel()[:-1], off_x.ravel(), off_x.ravel()],
        [0, 1, -1, m, -m],
        shape=(m * m, m * m),
        format="csc",
    )
    rhs = np.broadcast_to(np.asarray(f, dtype=np.float64), (s, s))[1:-1, 1:-1].ravel() * h2
    u = np.zeros((s, s))
    # the matrix is symmetric: a minimum-degree ordering of A^T + A fills in least (1.5x faster than COLAMD)
    u[1:-1, 1:-1] = spsolve(A, rhs, permc_spec="MMD_AT_PLUS_A").reshape(m, m)
    return u


def darcy_cache_path(n: int, resolution: int, seed: int) -> Path:
    """Where :func:`generate_darcy` caches ``(n, resolution, seed)`` (under ``$XMODAL_CACHE/darcy``)."""
    return cache_dir("darcy") / f"darcy-v{GENERATOR_VERSION}-n{n}-r{resolution}-seed{seed}.npz"


def _read_cache(path: Path, n: int, resolution: int) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            a, u = z["a"], z["u"]
    except Exception:  # missing, half-written by a crashed older version, or damaged: regenerate
        return None
    if a.shape != (n, 1, resolution, resolution) or u.shape != a.shape:
        return None
    return a.astype(np.float32), u.astype(np.float32)


def _write_cache(path: Path, a: np.ndarray, u: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, a=a.astype(np.uint8), u=u.astype(np.float32))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is as readable as any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def generate_darcy(
    n: int, resolution: int = 85, seed: int = 0, *, cache: bool = True, progress: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` Darcy-flow samples: permeability ``a`` and pressure ``u`` on a ``resolution²`` node grid.

    The domain is the unit square (nondimensional), nodes at ``(i h, j h)`` with ``h = 1/(resolution-1)``
    including the boundary; forcing ``f = 1``, ``u = 0`` on the boundary (see the module docstring
    for the field, the thresholding and the scheme). Sample ``i`` is drawn from
    ``numpy.random.default_rng([seed, i])``, so results are identical across runs and machines
    and ``generate_darcy(m, r, s)`` is the first ``m`` samples of ``generate_darcy(n, r, s)`` for ``m <= n``.

    Args:
        n: number of samples (>= 1).
        resolution: grid nodes per side, boundary included (>= 5). FNO's benchmark uses 85.
        seed: the seed (>= 0).
        cache: read / write the result under ``$XMODAL_CACHE/darcy`` (:func:`darcy_cache_path`).
        progress: show a progress bar; ``None`` shows one on a terminal only.

    Returns:
        ``(a, u)``: ``a`` ``(n, 1, resolution, resolution)`` float32 with values in {3, 12};
        ``u`` ``(n, 1, resolution, resolution)`` float32, zero on the boundary, of order ``1e-2``.

    Raises:
        XmodalError: ``n``, ``resolution`` or ``seed`` out of range.
    """
    if int(n) != n or n < 1:
        raise XmodalError(f"generate_darcy needs n >= 1 samples, got {n!r}")
    if int(resolution) != resolution or resolution < 5:
        raise XmodalError(f"generate_darcy needs an integer resolution >= 5, got {resolution!r}")
    if int(seed) != seed or seed < 0:
        raise XmodalError(f"generate_darcy needs an integer seed >= 0, got {seed!r}")
    n, resolution, seed = int(n), int(resolution), int(seed)
    path = darcy_cache_path(n, resolution, seed) if cache else None
    if path is not None and path.is_file():
        hit = _read_cache(path, n, resolution)
        if hit is not None:
            return hit
    from tqdm.auto import tqdm

    a = np.empty((n, 1, resolution, resolution), np.float32)
    u = np.empty_like(a)
    bar = tqdm(range(n), desc=f"Darcy flow {resolution}x{resolution}", unit="sample",
               disable=None if progress is None else not progress)
    for i in bar:
        rng = np.random.default_rng([seed, i])
        coeff = threshold_permeability(sample_grf(resolution, rng))
        a[i, 0] = coeff
        u[i, 0] = solve_darcy(coeff, 1.0)
    if path is not None:
        _write_cache(path, a, u)
    return a, u
