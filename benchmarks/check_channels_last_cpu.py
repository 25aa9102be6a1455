"""Why ``memory_format="channels_last"`` is refused on the CPU: five forward and backward passes of a
single 1x1 stride-2 convolution (the shortcut of a ResNet stage) in channels_last, each case in its
own process with a time limit, against the same in the default layout.

    python benchmarks/check_channels_last_cpu.py [--timeout 20]

Prints one line per case: the layout, the channels, and "ok" with the seconds of the last pass, or
"HUNG" (no result within the limit) or the signal that killed it. With torch 2.13.0+cpu on the
machine of ``benchmarks/README.md`` the channels_last cases hang on their third pass.
"""
import argparse
import subprocess
import sys

CASE = """
import time, torch
torch.manual_seed(0)
layout = torch.channels_last if {cl} else torch.contiguous_format
conv = torch.nn.Conv2d(3, {c}, 1, stride=2, bias=False).to(memory_format=layout)
x = torch.randn(16, 3, 32, 32).contiguous(memory_format=layout)
for i in range(5):
    t = time.perf_counter()
    conv(x).sum().backward()
print(f"{{time.perf_counter() - t:.4f}}")
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for cl in (False, True):
        for c in (2, 4, 64):
            name = f"{'channels_last' if cl else 'contiguous':13s} channels {c:3d}"
            try:
                run = subprocess.run([sys.executable, "-c", CASE.format(cl=cl, c=c)], capture_output=True, text=True,
                                     timeout=args.timeout)
                result = f"ok, last pass {run.stdout.strip()} s" if run.returncode == 0 else f"died ({run.returncode})"
            except subprocess.TimeoutExpired:
                result = f"HUNG (no result in {args.timeout:g} s)"
            print(f"{name}: {result}", flush=True)


if __name__ == "__main__":
    main()
