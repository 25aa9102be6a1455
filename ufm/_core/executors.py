"""Executors shared by sweeps and experiments: local worker processes or a Dask cluster.

Both are ``concurrent.futures.Executor``s, so a sweep or an experiment submits the same
tasks either way. Local pools use *spawn*, not fork (a forked child of a process whose
torch/OpenMP threads have run can hang), and give each worker its share of the cores for
torch: oversubscribed threads slow torch down many-fold on a small machine.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Callable, Optional, Tuple

__all__ = ["ClusterError", "init_worker", "process_pool", "dask_executor"]


class ClusterError(RuntimeError):
    """The ``cluster`` parameter names no usable cluster: an unknown form, a Dask scheduler that
    cannot be reached, or dask.distributed not installed. ``param`` is ``"cluster"``, so a
    caller (the command line) can name its own flag."""

    param = "cluster"


def init_worker(workers: int) -> None:
    """Limit torch in this process to its share of the cores when ``workers`` processes share them."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def process_pool(workers: Optional[int] = None) -> ProcessPoolExecutor:
    """A spawned pool of ``workers`` processes (default one per CPU), each with its share of threads."""
    n = workers or os.cpu_count() or 1
    return ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, initargs=(n,))


def dask_executor(cluster: str, workers: Optional[int]) -> Tuple[Executor, Callable[[], None]]:
    """(executor, close) for ``local-dask`` (a LocalCluster of ``workers`` processes, default 2)
    or ``dask://HOST:PORT`` (an existing scheduler).

    Raises:
        ClusterError: dask.distributed is missing, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("The 'cluster' parameter needs dask.distributed, which is not installed: "
                           "pip install 'ufm[cluster]'.") from None
    if cluster == "local-dask":
        n = workers or 2
        lc = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(lc)
        client.run(init_worker, n)  # each worker's share of the cores for torch

        def close():
            client.close()
            lc.close()
    elif cluster.startswith("dask://"):
        address = "tcp://" + cluster[len("dask://"):]
        try:
            client = Client(address, timeout=10)
        except (OSError, TimeoutError) as e:
            raise ClusterError(f"the Dask scheduler at {address} cannot be reached: {e}") from None
        close = client.close
    else:
        raise ClusterError(f"The 'cluster' parameter must be 'local-dask' or 'dask://HOST:PORT'. "
                           f"Got {cluster!r} instead.")
    return client.get_executor(), close
