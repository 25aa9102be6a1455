"""Executors shared by sweeps and experiments: spawned local pools with a share of the cores, Dask."""
import os

import pytest

from ufm._core.executors import ClusterError, dask_executor, init_worker, process_pool


def _threads(_=None):
    import torch

    return torch.get_num_threads()


def test_a_local_pool_gives_each_worker_its_share_of_the_cores():
    with process_pool(2) as pool:
        threads = set(pool.map(_threads, range(4)))
    assert threads == {max(1, (os.cpu_count() or 1) // 2)}


def test_init_worker_sets_the_share_here_too():
    import torch

    before = torch.get_num_threads()
    try:
        init_worker(max(1, os.cpu_count() or 1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_an_unknown_cluster_syntax_is_refused():
    with pytest.raises(ClusterError, match=r"The 'cluster' parameter must be 'local-dask' or 'dask://HOST:PORT'. Got 'tcp://nowhere'"):
        dask_executor("tcp://nowhere", 1)
