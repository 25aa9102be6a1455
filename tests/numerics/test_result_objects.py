"""Result objects: how seeds pair with problems in solve (zip, product), SolveResult.to_dict."""
import json

import pytest
import torch

from ufm import InvalidParameterError, UFMProblem, solve


def test_product_pairing_equals_one_solve_per_problem_and_seed():
    problems = [UFMProblem(3, 2, 3, alpha=0.0), UFMProblem(3, 2, 3, alpha=0.1)]
    # three steps: the seed decides the start, and a batch equals one-by-one solves to rounding
    both = solve(problems, seeds=[0, 5], pairing="product", max_steps=3)
    assert [p.alpha for p in both.problems] == [0.0, 0.0, 0.1, 0.1] and both.seeds == [0, 5, 0, 5]
    for i, (p, s) in enumerate(zip(both.problems, both.seeds)):
        one = solve(p, seeds=s, max_steps=3)
        assert torch.allclose(both.W[i], one.W[0], rtol=0, atol=1e-12)
    assert not torch.allclose(both.W[0], both.W[1])  # another seed, another start


def test_zip_pairing_is_one_seed_per_problem():
    problems = [UFMProblem(3, 2, 3), UFMProblem(3, 2, 3, alpha=0.2)]
    r = solve(problems, seeds=[7, 8], max_steps=3)
    assert r.seeds == [7, 8]
    assert torch.allclose(r.W[1], solve(problems[1], seeds=8, max_steps=3).W[0], rtol=0, atol=1e-12)
    with pytest.raises(InvalidParameterError, match="one seed per problem"):
        solve(problems, seeds=[1, 2, 3])
    with pytest.raises(InvalidParameterError, match="'pairing'"):
        solve(problems, seeds=[1, 2], pairing="outer")


def test_solve_result_to_dict_is_plain_json():
    r = solve(UFMProblem(3, 2, 3), seeds=[0, 1], pairing="product", record_every=5)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["seeds"] == [0, 1] and d["problems"][0]["num_classes"] == 3
    assert len(d["W"]) == 2 and len(d["W"][0]) == 3 and len(d["W"][0][0]) == 3  # (B, K, d)
    assert d["grad_norm"] == r.grad_norm.tolist() and d["trajectory"]["step"] == r.trajectory["step"].tolist()


def test_product_pairing_needs_a_seed():
    with pytest.raises(InvalidParameterError, match="at least one seed"):
        solve(UFMProblem(3, 2, 3), seeds=[], pairing="product")
