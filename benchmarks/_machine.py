"""Shared by the benchmarks: the machine description they print (CPU model, cores, torch threads,
versions) and the Linux peak-memory probe (VmHWM, reset through /proc/self/clear_refs)."""
import os
import platform

import torch


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def status_kib(field: str) -> int:
    """A field of /proc/self/status (e.g. VmRSS, VmHWM), in KiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> int:
    """Reset the peak RSS (VmHWM) to the current RSS; return the current RSS (KiB)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return status_kib("VmRSS")


def memory_supported() -> bool:
    """Whether the peak-memory probe works here (Linux with a writable clear_refs)."""
    try:
        status_kib("VmHWM")
        return os.access("/proc/self/clear_refs", os.W_OK)
    except (OSError, RuntimeError):
        return False
