"""Cost of judging the claims on a finished experiment: ``ufm claims DIR`` (goal: under 2 s).

    .venv/bin/python benchmarks/bench_claims.py DIR      # a finished experiment folder
    .venv/bin/python benchmarks/bench_claims.py          # a tiny experiment, trained here first

Times the whole command (a fresh process: start-up, reading every run's records, the statistics)
and ``ufm.evaluate_claims([DIR])`` in this process, median of 5 after one warm-up, and says
whether the command imported torch.
"""
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from _machine import machine

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _tiny(folder: pathlib.Path) -> pathlib.Path:
    from problems import TINY_EXPERIMENT

    from ufm.dnn.experiment import load_experiment, run_experiment

    (folder / "tiny.toml").write_text(TINY_EXPERIMENT)
    run_experiment(load_experiment(folder / "tiny.toml"), folder / "out", workers=0, progress=False)
    return folder / "out"


def _median(fn, repeats=5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from ufm.analysis.claims import evaluate_claims

    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else _tiny(pathlib.Path(tmp))
        runs = len(list((folder / "runs").glob("*/config.json")))
        command = [sys.executable, "-m", "ufm", "claims", str(folder)]
        whole = _median(lambda: subprocess.run(command, capture_output=True, check=True))
        inside = _median(lambda: evaluate_claims([folder]))
        probe = ("import sys; from ufm.cli import main; main(['claims', sys.argv[1]]); "
                 "print('torch' in sys.modules, file=sys.stderr)")
        torch = subprocess.run([sys.executable, "-c", probe, str(folder)], capture_output=True, text=True,
                               check=True).stderr.strip().splitlines()[-1]
    print(f"machine: {machine()}")
    print(f"ufm claims on {folder} ({runs} runs): whole command {whole:.2f} s, evaluate_claims {inside:.3f} s "
          f"(median of 5); torch imported: {torch}; goal under 2 s: {'met' if whole < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
