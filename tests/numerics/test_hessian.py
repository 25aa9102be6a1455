"""Full Hessian at the minimizer: symmetry null space, Lanczos vs dense, size guard."""
import numpy as np
import pytest
import torch

from ufm import InvalidParameterError, UFMProblem, closed_form, explicit_minimizer
from ufm.numerics.hessian import dense_hessian
from ufm.numerics.spectrum import spectrum, symmetry_null_dim, top_eigenvalues
from ufm.numerics.objective import UFMObjective


@pytest.mark.parametrize("K, d, n, lambda_b, alpha", [
    (3, 2, 2, 0.0, 0.1),  # d = K - 1
    (3, 4, 2, 0.0, 0.1),
    (4, 6, 2, 1e-2, 0.0),  # regularized bias: no shift direction
    (4, 3, 3, 0.0, 0.2),
    (5, 7, 1, 0.0, 0.0),
])
def test_null_space_of_the_full_hessian_is_the_symmetry_orbit(K, d, n, lambda_b, alpha):
    p = UFMProblem(K, n, d, 5e-2, 5e-2, lambda_b, alpha)
    W, H, b = explicit_minimizer(p, rotation_seed=1)
    sp = spectrum(dense_hessian(p, W, H, b))
    assert sp.negative == 0  # a minimizer
    assert sp.null_dim == symmetry_null_dim(p, trivial=False)
    # a clear gap between the null space and the rest
    assert sp.eigenvalues[sp.null_dim] > 1e6 * sp.tol
    assert np.isfinite(sp.condition_number) and sp.condition_number >= 1


def test_trivial_minimizer_has_only_the_bias_direction():
    p = UFMProblem(4, 3, 4, 0.15, 0.15, 0.0, 0.3)
    assert closed_form(p).trivial
    W, H, b = explicit_minimizer(p)
    sp = spectrum(dense_hessian(p, W, H, b))
    assert sp.negative == 0 and sp.null_dim == symmetry_null_dim(p, trivial=True) == 1


def test_dense_hessian_matches_the_solver_gradient():
    p = UFMProblem(3, 2, 3, 1e-2, 2e-2, 1e-3, 0.1)
    obj = UFMObjective([p], device="cpu")
    x = obj.initial_point([0], 1.0)
    W, H, b = obj.unpack(x)
    Hd = dense_hessian(p, W[0], H[0], b[0])
    v = torch.randn(x.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    eps = 1e-6  # central difference of the solver's analytic gradient along v
    gp = obj.value_and_grad(x + eps * v)[1][0]
    gm = obj.value_and_grad(x - eps * v)[1][0]
    assert torch.allclose(Hd @ v, (gp - gm) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_lanczos_top_eigenvalues_agree_with_dense():
    p = UFMProblem(5, 20, 8, 5e-3, 5e-3, 0.0, 0.1)  # P = 40 + 800 + 5 = 845
    W, H, b = explicit_minimizer(p, rotation_seed=2)
    dense = spectrum(dense_hessian(p, W, H, b)).eigenvalues[-10:]
    lanczos = top_eigenvalues(p, W, H, b, k=10)
    assert np.allclose(lanczos, dense, rtol=1e-8, atol=0)


def test_dense_size_guard_names_the_size_before_allocating():
    p = UFMProblem(10, 1000, 64, 5e-3, 5e-3)
    W = torch.zeros(10, 64)
    H = torch.zeros(64, 10000)
    with pytest.raises(InvalidParameterError, match=r"P = 640650 parameters and would need about 9173\.\d\d GiB \(the matrix, "
                       r"3057\.96 GiB.*top_eigenvalues"):
        dense_hessian(p, W, H, torch.zeros(10))
