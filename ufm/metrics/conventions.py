"""The NC conventions of published code bases, by name: which numbers each one computes.

Papers and their code report different numbers under the same names NC1-NC3. A convention is the
data that says which: which global mean centres the class means, whether NC1 carries the 1/K,
which standard deviation the equinorm takes, whether the classifier rows are centred, and which
NC3. :func:`ufm.nc_metrics`, :class:`~ufm.metrics.accumulators.TwoPassNC` and
:func:`ufm.metrics.nc.measures` take ``convention=`` one of :data:`CONVENTIONS`; ``"ufm"`` is the
default. With mu_k the class means, n_k the class counts, N = sum_k n_k and W (K, d) the classifier:

* ``global_mean``: ``"class means"``, mu_G = (1/K) sum_k mu_k, or ``"samples"``, mu_G = (1/N)
  sum_i h_i = sum_k n_k mu_k / N (the two agree on balanced classes). M = the class means
  centred on mu_G (K, d) and Sigma_B = M^T M / K follow it, and with them nc1, nc2_h, the
  nc2_h_* measures and nc3. Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T in all;
* ``nc1_per_class``: nc1 = tr(Sigma_W Sigma_B^+) / K if true, tr(Sigma_W Sigma_B^+) if false;
* ``equinorm_correction``: std_k ||v_k|| / mean_k ||v_k|| with the population std (0) or the
  sample std (1, larger by sqrt(K/(K-1)));
* ``center_w``: nc2_w and nc3 read the centred rows w_k - (1/K) sum_j w_j instead of W (the
  nc2_w_equinorm and nc2_w_equiangular measures keep W as given);
* ``nc3``: ``"difference"`` || W/||W||_F - M/||M||_F ||_F, ``"squared difference"`` its square,
  or ``"product"`` || W M^T/||W M^T||_F - (I - 11^T/K)/sqrt(K-1) ||_F.

What every convention shares: nc2_h, nc2_w = || G/||G||_F - (I - 11^T/K)/sqrt(K-1) ||_F (G the
Gram matrix of M, resp. of W or its centred rows); nc2_*_equiangular = mean over j != k of
|cos(v_j, v_k) + 1/(K-1)|; nc4 = the fraction of samples whose nearest-class-center decision
differs from argmax (W h + b); and ufm's pseudo-inverse of Sigma_B (the top min(K-1, d)
eigen-directions, eigenvalues below max(K, d) eps lambda_max dropped), which agrees with the
code bases' (``scipy.linalg.pinv``, ``svds(Sb, k=K-1)``) wherever Sigma_B has K-1 eigenvalues
well above rounding. A measure that a paper does not define keeps ufm's definition (with the
convention's global mean).
"""
from __future__ import annotations

from dataclasses import dataclass

from ufm._core.validation import Options, check_param

__all__ = ["NCConvention", "CONVENTIONS", "CONVENTION_NAMES", "get_convention"]


@dataclass(frozen=True)
class NCConvention:
    """How one code base computes the NC measures (the fields are described in the module docstring).

    Attributes:
        name: the key in :data:`CONVENTIONS`.
        reference: the paper (authors, title, year) and the code whose numbers this reproduces.
        global_mean: ``"class means"`` or ``"samples"``.
        nc1_per_class: nc1 divided by K.
        equinorm_correction: 0 (population std) or 1 (sample std) in ``nc2_*_equinorm``.
        center_w: the classifier rows centred in nc2_w and nc3.
        nc3: ``"difference"``, ``"squared difference"`` or ``"product"``.
        notes: what else to know when comparing with the reference.
    """

    name: str
    reference: str
    global_mean: str
    nc1_per_class: bool
    equinorm_correction: int
    center_w: bool
    nc3: str
    notes: str = ""


_CONVENTIONS = (
    NCConvention(
        "ufm", "ufm's own: the definitions of Papyan et al. 2020 and Zhu et al. 2021 as written in "
        "ufm/metrics/nc.py (NC1 with the 1/K of Papyan et al.'s Figure 6, NC2 as Zhu et al., NC3 "
        "the self-duality distance of Papyan et al., not squared).",
        "class means", True, 0, False, "difference",
        "nc1_variant='unnormalized' drops the 1/K (only with this convention)."),
    NCConvention(
        "guo2025", "Guo et al., Cross Entropy versus Label Smoothing: A Neural Collapse Perspective, "
        "2025: the numbers of the authors' code, which computes NC as the neural-collapse notebook "
        "of Han, Papyan and Donoho (neuralcollapse.github.io) does.",
        "class means", False, 1, False, "squared difference",
        "nc1 = np.trace(Sw @ inv_Sb) without 1/K; equinorm with torch.std (unbiased); "
        "nc3 = torch.norm(W.T/||W|| - M_/||M_||)**2."),
    NCConvention(
        "zhu2021", "Zhu, Ding, Zhou, Li, You, Sulam and Qu, A Geometric Analysis of Neural Collapse "
        "with Unconstrained Features, NeurIPS 2021; code github.com/tding1/Neural-Collapse "
        "(validate_NC.py, plot.py).",
        "samples", True, 0, False, "product",
        "mu_G = sum of all features / N; nc1 = trace(Sigma_W pinv(Sigma_B)) / K; NC2 on W uncentred; "
        "NC3 = || W M^T/||W M^T||_F - ETF ||_F. The code's plot labelled NC_4 is the bias residual "
        "||W mu_G + b||, which ufm does not report: nc4 keeps the NCC meaning. Equinorm and "
        "equiangularity are not in the paper: ufm's."),
    NCConvention(
        "zhou2022", "Zhou, You, Li, Liu, Liu, Qu and Zhu, Are All Losses Created Equal: A Neural "
        "Collapse Perspective, NeurIPS 2022; code github.com/jinxinzhou/nc_loss (evaluate.py).",
        "samples", True, 0, True, "product",
        "as zhu2021, but W = W - mean_k w_k before NC2 (compute_ETF) and NC3 (compute_W_H_relation)."),
    NCConvention(
        "papyan2020", "Papyan, Han and Donoho, Prevalence of neural collapse during the terminal phase "
        "of deep learning training, PNAS 2020 (Figures 2-7); the sample std and the NCC rule of the "
        "same authors' published notebook (Han, Papyan and Donoho, neuralcollapse.github.io).",
        "samples", True, 1, False, "squared difference",
        "mu_G = Ave_{i,c} h_{i,c}; NC1 = Tr(Sigma_W Sigma_B^+ / C); NC3 = ||W^T/||W||_F - M/||M||_F||_F^2; "
        "the paper's classes are balanced, where mu_G is also the mean of the class means. The paper "
        "has no Gram-matrix NC2 (nc2_h, nc2_w are ufm's)."),
)

#: every convention by name
CONVENTIONS = {c.name: c for c in _CONVENTIONS}
#: the valid names, in a fixed order
CONVENTION_NAMES = tuple(CONVENTIONS)


def get_convention(name, caller: str) -> NCConvention:
    """The convention called ``name``; InvalidParameterError naming ``convention``, the value and
    the valid names otherwise."""
    check_param("convention", name, Options(CONVENTION_NAMES), caller)
    return CONVENTIONS[name]
