"""The batched solver: against the closed form, autograd and itself (batched vs one by one), and its
one loop (stopping, freezing, divergence policies, the recorder hook)."""
import math

import numpy as np
import pytest
import torch

from problems import DEVICES, random_problems, reference_objective
from ufm import (ClosedFormNotApplicableWarning, InvalidParameterError, SolverDivergedError, UFMProblem,
                 closed_form, compare, measure, solve)
from ufm.losses import label_smoothing_cross_entropy
from ufm.numerics.methods import GradientDescent
from ufm.numerics.objective import UFMObjective
from ufm.numerics.solve import iterate, solve as numerics_solve


def test_analytic_gradient_matches_autograd_of_torch_cross_entropy():
    problems = [UFMProblem(4, 3, 6, 3e-3, 8e-3, 0.0, 0.0), UFMProblem(4, 3, 6, 1e-2, 2e-3, 5e-2, 0.3)]
    obj = UFMObjective(problems, device="cpu")
    x = obj.initial_point([0, 1], 2.0)
    f, g = obj.value_and_grad(x)
    for i, p in enumerate(problems):
        xi = x[i:i + 1].clone().requires_grad_(True)
        W, H, b = obj.unpack(xi)
        fr = reference_objective(p, W[0], H[0], b[0])
        (gr,) = torch.autograd.grad(fr, xi)
        assert float(f[i]) == pytest.approx(float(fr.detach()), rel=1e-14)
        y = torch.arange(p.N) // p.n
        data = label_smoothing_cross_entropy((W[0] @ H[0] + b[0][:, None]).T, y, p.alpha)
        reg = p.lambda_w / 2 * W[0].pow(2).sum() + p.lambda_h / 2 * H[0].pow(2).sum() + p.lambda_b / 2 * b[0].pow(2).sum()
        assert float(f[i]) == pytest.approx(float((data + reg).detach()), rel=1e-14)
        assert torch.allclose(g[i], gr[0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("device", DEVICES)
def test_lbfgs_matches_closed_form_on_random_problems(device):
    problems = random_problems(seed=11, count=12)
    assert {p.d - p.K for p in problems} >= {-1, 0, 3}  # d = K-1, d = K and d > K all present
    for p in problems:
        res = solve(p, seeds=5, tol=1e-11, device=device)
        err = compare(p, measure(res, 0))
        assert bool(res.converged[0])
        for k in ("logit_gap", "p_true", "w_norm", "h_norm", "objective", "bias", "nc2_h", "nc2_w", "nc3", "orbit"):
            assert err[k] < 1e-6, (p, k, err[k])
        assert err["nc1"] < 1e-12 and err["nc4"] == 0


def test_trivial_problems_converge_to_zero():
    for p in random_problems(seed=3, count=3, trivial=True):
        res = solve(p, seeds=0, tol=1e-11)
        m = measure(res, 0)
        assert closed_form(p).trivial
        assert m["w_norm"] < 1e-8 and m["h_norm"] < 1e-8
        assert m["objective"] == pytest.approx(closed_form(p).objective, rel=1e-12)


@pytest.mark.parametrize("method, options", [("gd", {"lr": 0.5}), ("momentum", {"lr": 0.1, "momentum": 0.9})])
def test_first_order_methods_reach_the_closed_form(method, options):
    p = UFMProblem(4, 5, 4, 2e-2, 2e-2, 0.0, 0.1)
    res = solve(p, method=method, seeds=1, tol=1e-10, max_steps=50_000, **options)
    assert bool(res.converged[0])
    err = compare(p, measure(res, 0))
    assert max(err[k] for k in ("logit_gap", "w_norm", "h_norm", "objective")) < 1e-7


@pytest.mark.parametrize("method", ["lbfgs", "gd"])
def test_batched_equals_one_by_one(method):
    """Batched and single solves take the same iterates up to rounding (checked after 40 steps,
    before any configuration stops); at convergence an L-BFGS configuration may stop one step
    earlier or later, since batched and single matrix products may differ in the last bit."""
    base = UFMProblem(5, 4, 6, 5e-3, 5e-3, 0.0, 0.0)
    problems = [base.replace(alpha=a, lambda_b=lb) for a in (0.0, 0.1, 0.3) for lb in (0.0, 1e-2)]
    seeds = list(range(len(problems)))
    for max_steps, tol in ((40, 1e-30), (300 if method == "gd" else None, 1e-10)):
        kw = dict(method=method, tol=tol, max_steps=max_steps, device="cpu")
        batched = solve(problems, seeds=seeds, **kw)
        for i, (p, s) in enumerate(zip(problems, seeds)):
            single = solve(p, seeds=s, **kw)
            assert float(single.objective[0]) == pytest.approx(float(batched.objective[i]), rel=1e-13)
            assert bool(single.converged[0]) == bool(batched.converged[i])
            if max_steps == 40 or method == "gd":
                assert int(single.steps[0]) == int(batched.steps[i])
                for name in ("W", "H", "b"):
                    assert torch.allclose(getattr(single, name)[0], getattr(batched, name)[i], rtol=1e-12, atol=1e-13)
            else:
                assert abs(int(single.steps[0]) - int(batched.steps[i])) <= 1


def test_same_seed_is_bitwise_reproducible_and_seeds_differ():
    p = UFMProblem(3, 4, 3, 1e-2, 1e-2, 0.0, 0.05)
    a, b = solve(p, seeds=4, device="cpu"), solve(p, seeds=4, device="cpu")
    assert torch.equal(a.W, b.W) and torch.equal(a.H, b.H)
    c = solve(p, seeds=5, method="gd", max_steps=3, device="cpu")
    d = solve(p, seeds=4, method="gd", max_steps=3, device="cpu")
    assert not torch.equal(c.W, d.W)


def test_float32_solve_is_close():
    p = UFMProblem(4, 5, 4, 2e-2, 2e-2, 0.0, 0.1)
    res = solve(p, dtype=torch.float32, tol=1e-5, seeds=0)
    assert res.W.dtype == torch.float32
    err = compare(p, measure(res, 0))
    assert err["objective"] < 1e-5 and err["w_norm"] < 1e-3


def test_trajectory_records_objective_gradient_and_nc1():
    p = UFMProblem(4, 5, 4, 2e-2, 2e-2, 0.0, 0.1)
    res = solve([p, p.replace(alpha=0.0)], seeds=[0, 1], method="gd", lr=0.5, tol=1e-30, max_steps=200,
                record_every=50)
    tr = res.trajectory
    assert tr["step"].tolist() == [0, 50, 100, 150, 200]
    assert tr["objective"].shape == tr["nc1"].shape == tr["grad_norm"].shape == (5, 2)
    assert torch.all(tr["objective"][1:] <= tr["objective"][:-1])  # gd with a small step decreases f
    assert torch.all(tr["nc1"][-1] < tr["nc1"][0])
    assert tr["nc2_h"].shape == tr["nc3"].shape == (5, 2) and torch.all(tr["nc3"][-1] < tr["nc3"][0])
    # the recorded NC1 is the same measure as nc_metrics on the final features
    from ufm import nc_metrics
    for i in range(2):
        ref = nc_metrics(res.H[i].T, res.labels, res.W[i], res.b[i])
        assert float(tr["nc1"][-1, i]) == pytest.approx(ref["nc1"], rel=1e-9)
        assert float(tr["nc3"][-1, i]) == pytest.approx(ref["nc3"], rel=1e-9)
    assert torch.equal(tr["objective"][-1], res.objective)


def test_divergence_names_step_and_suggests_smaller_lr():
    p = UFMProblem(5, 10, 5, 5e-3, 5e-3, 0.0, 0.0)
    with pytest.raises(SolverDivergedError, match=r"diverged at step \d+ for configuration 0 .*smaller learning rate "
                                                   r"\(lr=50\.0 now, e\.g\. lr=12\.5\)"):
        solve(p, method="gd", lr=50.0, max_steps=1000)


def test_small_dimension_warns_and_still_solves():
    p = UFMProblem(6, 3, 2, 1e-2, 1e-2, 0.0, 0.0)
    with pytest.warns(ClosedFormNotApplicableWarning):
        res = solve(p, seeds=0)
    assert res.W.shape == (1, 6, 2) and bool(torch.isfinite(res.objective).all())


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(method="adam"), r"'method' parameter of solve must be a str among \{'gd', 'lbfgs', 'momentum'\}"),
    (dict(tol=-1.0), r"'tol'.*\(0, inf\)"),
    (dict(seeds=[0, 1, 2]), r"'seeds'.*one seed per problem \(1\)"),
    (dict(method="gd", lr=0.0), r"'lr'.*\(0, inf\)"),
    (dict(method="momentum", momentum=1.0), r"'momentum'.*\[0, 1\)"),
    (dict(max_steps=-3), r"'max_steps'"),
    (dict(dtype=torch.float16), r"'dtype'"),
    (dict(record_every=-1), r"'record_every'"),
])
def test_invalid_arguments(kwargs, pattern):
    with pytest.raises(InvalidParameterError, match=pattern):
        solve(UFMProblem(3, 2, 3), **kwargs)


def test_mixed_shapes_and_empty_batches_are_rejected():
    with pytest.raises(InvalidParameterError, match="share \\(K, d, n, loss\\)"):
        solve([UFMProblem(3, 2, 3), UFMProblem(4, 2, 4)])
    with pytest.raises(InvalidParameterError, match="non-empty"):
        solve([])
    with pytest.raises(InvalidParameterError, match="UFMProblem"):
        solve(["K=3"])


def test_unreachable_tolerance_stalls_instead_of_running_to_the_cap():
    p = UFMProblem(3, 1, 3)
    res = solve(p, tol=1e-18, seeds=0)
    assert res.status == ["stalled"] and not bool(res.converged[0]) and int(res.steps[0]) < 1000
    res32 = solve(p, tol=1e-10, dtype=torch.float32, seeds=0)  # below float32 resolution
    assert res32.status == ["stalled"] and int(res32.steps[0]) < 1000
    res_cap = solve(p, tol=1e-18, seeds=0, max_steps=20)
    assert res_cap.status == ["max_steps"] and int(res_cap.steps[0]) == 20


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(method="lbfgs", lr=0.1), r"'lr' parameter of solve applies to method 'gd' or 'momentum' only"),
    (dict(method="gd", momentum=0.5), r"'momentum'.*applies to method 'momentum' only"),
    (dict(method="gd", history=5), r"'history'.*'lbfgs' only"),
    (dict(patience=0), r"'patience'.*\[1, inf\)"),
])
def test_options_of_another_method_are_rejected(kwargs, pattern):
    with pytest.raises(InvalidParameterError, match=pattern):
        solve(UFMProblem(3, 2, 3), **kwargs)


def test_numpy_integer_seed_is_accepted():
    import numpy as np

    a = solve(UFMProblem(3, 2, 3), seeds=np.int64(3), method="gd", max_steps=2)
    b = solve(UFMProblem(3, 2, 3), seeds=3, method="gd", max_steps=2)
    assert torch.equal(a.W, b.W)


def test_momentum_batched_equals_one_by_one():
    base = UFMProblem(4, 3, 5, 1e-2, 1e-2, 0.0, 0.0)
    problems = [base.replace(alpha=a) for a in (0.0, 0.2)]
    kw = dict(method="momentum", lr=0.1, tol=1e-9, max_steps=400, device="cpu")
    batched = solve(problems, seeds=[0, 1], **kw)
    for i, p in enumerate(problems):
        single = solve(p, seeds=i, **kw)
        assert torch.allclose(single.H[0], batched.H[i], rtol=1e-12, atol=1e-13)


def _loop(problems, lr, **kw):
    obj = UFMObjective(problems, device="cpu")
    x = obj.initial_point(list(range(len(problems))), 1.0)
    return obj, iterate(obj, GradientDescent(obj, lr=lr), x, **kw)


def test_records_at_zero_every_m_steps_and_the_last_step():
    seen = []
    p = UFMProblem(3, 2, 3, 1e-2, 1e-2)
    _loop([p], 0.5, tol=0.0, max_steps=25, record_every=10,
          on_record=lambda step, x, f, g, d: seen.append(step) or False)
    assert seen == [0, 10, 20, 25]


def test_the_recorder_can_stop_the_loop():
    p = UFMProblem(3, 2, 3, 1e-2, 1e-2)
    _, end = _loop([p], 0.5, tol=0.0, max_steps=1000, record_every=5,
                   on_record=lambda step, x, f, g, d: step >= 15)
    assert end.step == 15 and int(end.steps[0]) == 15


def test_a_diverging_configuration_is_frozen_and_reported_or_raises():
    stable, wild = UFMProblem(3, 2, 3, 1e-2, 1e-2), UFMProblem(3, 2, 3, 1e-2, 1e-2, alpha=0.1)
    obj = UFMObjective([stable, wild], device="cpu")
    x = obj.initial_point([0, 1], 1.0)
    x[1] *= 40  # a huge start: gd with this step explodes there
    end = iterate(obj, GradientDescent(obj, lr=5.0), x.clone(), tol=0.0, max_steps=200, on_divergence="freeze")
    assert end.diverged_at[0] is None and end.diverged_at[1] is not None
    assert math.isfinite(float(end.f[1])) and int(end.steps[1]) == end.diverged_at[1] - 1
    with pytest.raises(SolverDivergedError, match=r"gd diverged at step \d+ for configuration 1 \(K=3"):
        iterate(obj, GradientDescent(obj, lr=5.0), x.clone(), tol=0.0, max_steps=200,
                describe=lambda i: str([stable, wild][i]).replace("UFMProblem(num_classes=", "K="))


def test_a_fixed_bias_never_moves():
    p = UFMProblem(3, 2, 3, 1e-2, 1e-2, lambda_b=0.0)
    obj = UFMObjective([p, p.replace(lambda_b=1e-2)], device="cpu", fixed_bias=[True, False])
    x = obj.initial_point([0, 1], 1.0)
    b0 = obj.unpack(x)[2].clone()
    end = iterate(obj, GradientDescent(obj, lr=0.5), x, tol=0.0, max_steps=50)
    b = obj.unpack(end.x)[2]
    assert torch.equal(b[0], b0[0]) and not torch.equal(b[1], b0[1])


def test_solve_records_only_objective_and_gradient_without_a_recorder():
    p = UFMProblem(3, 2, 3, 1e-2, 1e-2)
    res = numerics_solve(p, method="gd", tol=1e-30, max_steps=20, record_every=10)
    assert sorted(res.trajectory) == ["grad_norm", "objective", "step"]
    res = numerics_solve(p, method="gd", tol=1e-30, max_steps=20, record_every=10,
                         recorder=lambda W, H, b: {"w2": (W ** 2).sum((1, 2))})
    assert res.trajectory["w2"].shape == (3, 1)
    assert float(res.trajectory["w2"][-1, 0]) == pytest.approx(float((res.W[0] ** 2).sum()))


def test_the_public_solve_records_nc_measures():
    import ufm

    res = ufm.solve(UFMProblem(3, 2, 3, 1e-2, 1e-2), method="gd", tol=1e-30, max_steps=20, record_every=10)
    assert {"nc1", "nc2_h", "nc3"} <= set(res.trajectory)
    assert ufm.solve.constraints is numerics_solve.constraints


def _two_loop(pairs, g, gamma):
    """-H g by the two-loop recursion (Nocedal and Wright, Alg. 7.4) over the kept pairs, oldest first."""
    q, alphas = g.copy(), []
    for s, y in reversed(pairs):
        a = (s @ q) / (s @ y)
        q -= a * y
        alphas.append(a)
    r = gamma * q
    for (s, y), a in zip(pairs, reversed(alphas)):
        r += s * (a - (y @ r) / (s @ y))
    return -r


@pytest.mark.parametrize("history", [1, 3, 5])
def test_lbfgs_compact_direction_equals_the_two_loop_recursion(history):
    """Three configurations offered 8 pairs each, some with non-positive curvature (refused):
    the batched compact-form direction is the two-loop recursion over each one's kept pairs."""
    from ufm.numerics.methods import LBFGS

    gen = torch.Generator().manual_seed(0)
    B, P = 3, 12
    A = [torch.randn(P, P, generator=gen, dtype=torch.float64) for _ in range(B)]
    A = [a @ a.T + P * torch.eye(P, dtype=torch.float64) for a in A]  # SPD: y = A s has s.y > 0
    method = LBFGS(None, history=history)
    x = torch.randn(B, P, generator=gen, dtype=torch.float64)
    grad = lambda x: torch.stack([A[b] @ x[b] for b in range(B)])  # noqa: E731
    g = grad(x)
    method.init(x, torch.zeros(B, dtype=torch.float64), g)
    kept = [[] for _ in range(B)]
    gamma = [float(method.gamma[b]) for b in range(B)]
    for k in range(8):
        x_new = x + torch.randn(B, P, generator=gen, dtype=torch.float64)
        g_new = grad(x_new)
        if k in (2, 5):  # configuration 1 sees a pair of negative curvature
            g_new[1] = g[1] - 0.5 * (x_new[1] - x[1])
        method._store(x_new, x, g_new, g, torch.ones(B, dtype=torch.bool))
        for b in range(B):
            s, y = (x_new[b] - x[b]).numpy(), (g_new[b] - g[b]).numpy()
            kept[b].append((s, y) if s @ y > 0 else None)  # the slot is taken either way
            if s @ y > 0:
                gamma[b] = (s @ y) / (y @ y)
        x, g = x_new, g_new
        d, gd = method._direction(g, (g * g).sum(1))
        for b in range(B):
            pairs = [p for p in kept[b][-history:] if p is not None]
            ref = _two_loop(pairs, g[b].numpy(), gamma[b])
            assert np.allclose(d[b].numpy(), ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())
            assert float(gd[b]) == pytest.approx(float(g[b] @ d[b]), rel=1e-10)


@pytest.mark.parametrize("method, kw", [("lbfgs", dict(tol=1e-30, max_steps=30)), ("lbfgs", dict(tol=1e-9)),
                                        ("gd", dict(lr=0.5, tol=1e-3, max_steps=1000))])
def test_a_batch_solved_in_parts_equals_one_batch(monkeypatch, method, kw):
    """On the CPU the batch is solved in parts (PART_BYTES): with parts of one or two
    configurations, results and the merged trajectory equal those of one part to rounding
    (gd: configurations that stop at different steps). At convergence an L-BFGS configuration
    may stop one step earlier or later (batched products round differently), so there the
    objective and the status are compared."""
    import ufm.numerics.solve as solve_module

    base = UFMProblem(4, 3, 5, 1e-2, 1e-2, 0.0, 0.0)
    problems = [base.replace(alpha=a) for a in (0.0, 0.1, 0.2, 0.3, 0.05)]
    run = lambda: numerics_solve(problems, seeds=[3, 1, 4, 1, 5], method=method, record_every=7,  # noqa: E731
                                 device="cpu", **kw)
    monkeypatch.setattr(solve_module, "PART_BYTES", 2 ** 40)
    whole = run()
    cls = solve_module.METHODS[method]
    one_config = (cls.state_vectors(cls.defaults) * UFMObjective(problems[:1]).num_params + 4 * base.K * base.N) * 8
    for size in (1, 2):
        monkeypatch.setattr(solve_module, "PART_BYTES", size * one_config)
        assert solve_module._chunks(UFMObjective(problems), cls, {}) == [(i, min(i + size, 5)) for i in range(0, 5, size)]
        parts = run()
        assert parts.status == whole.status
        assert torch.allclose(parts.objective, whole.objective, rtol=1e-13, atol=0)
        if kw["tol"] == 1e-9:
            assert bool(parts.converged.all()) and (parts.steps - whole.steps).abs().max() <= 1
            continue
        if method == "gd":
            assert len(set(parts.steps.tolist())) > 1  # the configurations stop at different steps
        assert torch.equal(parts.steps, whole.steps)
        assert torch.allclose(parts.W, whole.W, rtol=1e-12, atol=1e-13)
        assert torch.equal(parts.trajectory["step"], whole.trajectory["step"])
        assert torch.allclose(parts.trajectory["objective"], whole.trajectory["objective"], rtol=1e-13, atol=0)
        # gradient norms shrink from about 0.4: rounding shows in them in absolute terms
        assert torch.allclose(parts.trajectory["grad_norm"], whole.trajectory["grad_norm"], rtol=0, atol=1e-12)


def test_divergence_in_a_later_part_names_the_configuration_of_the_batch(monkeypatch):
    import ufm.numerics.solve as solve_module

    monkeypatch.setattr(solve_module, "PART_BYTES", 1)  # parts of one configuration
    p = UFMProblem(3, 2, 3, 1e-2, 1e-2, alpha=0.1)
    start = UFMObjective([p] * 3).initial_point([0, 1, 2], 1.0)
    start[2] *= 40  # a huge start: gd with this step explodes there only
    with pytest.raises(SolverDivergedError, match=r"diverged at step \d+ for configuration 2 \(K=3"):
        numerics_solve([p] * 3, method="gd", lr=5.0, tol=1e-30, max_steps=200, initial_point=start)
