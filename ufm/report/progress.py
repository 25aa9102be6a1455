"""Progress of long work on the command line, on stderr: solver steps, counted items, stage lines.

The analyses render nothing: they take progress hooks (the solver loop's ``on_step(step,
max_steps, grad_norm, tol)``, ``ufm.numerics.solve.OnStep``; the ``on_spectrum(done, total)``
of ``ufm.analysis.conditioning``) and :class:`Progress` makes those hooks for a command. Where
the progress goes:

* on a terminal, each piece of work is a tqdm bar, redrawn at most every ``BAR_EVERY`` seconds
  and cleared when the work ends (the results follow on stdout);
* elsewhere (a pipe, a log file, CI), work that ends within ``LINE_EVERY`` seconds writes
  nothing; longer work writes one line every ``LINE_EVERY`` seconds, and its last state when it
  ends (tqdm's carriage returns would fill a log);
* with ``quiet`` (``--quiet``), no hook is made and nothing is written.

A solver's line: the step, the largest ||grad f|| of the configurations still running against
the tolerance, steps per second and an ETA. The ETA extrapolates the recent decrease of
log ||grad f|| (over about ``WINDOW`` seconds: linear convergence) to the tolerance, and is at
most the time to the step cap; ``<=`` marks an ETA the cap bounds (no tolerance, or no decrease
yet). The bar's fraction is the steps taken over the steps taken plus those the ETA expects. A
solve in consecutive parts (a large batch on the CPU, one batched solve per group in ``ufm
verify``, one per step size in ``ufm convergence``) starts again at step 0: it is shown as
``part 2``, ``part 3``, ... of the same line.
"""
from __future__ import annotations

import math
import sys
import time
from collections import deque
from typing import Callable, List, Optional, TextIO

from ufm.report.text import duration_text

__all__ = ["Progress", "LINE_EVERY", "BAR_EVERY", "WINDOW"]

#: seconds between two lines when the stream is not a terminal (and before the first)
LINE_EVERY = 10.0
#: seconds between two redraws of a bar
BAR_EVERY = 0.1
#: seconds of recent steps over which a solver's rate and ETA are measured
WINDOW = 5.0


class _Display:
    """One piece of work on ``progress``'s stream: a tqdm bar, or a line every ``every`` seconds."""

    def __init__(self, progress: "Progress", desc: str):
        self.progress, self.desc = progress, desc
        self.last = -math.inf if progress.bar else time.monotonic()  # a bar shows at once, lines after `every`
        self.bar, self.lines = None, 0
        self.finish: Callable[[], None] = lambda: self.close(None)  # the hook's close, set by the hook

    def due(self, now: float) -> bool:
        return now - self.last >= (BAR_EVERY if self.progress.bar else self.progress.every)

    def show(self, text: str, n: float, total: float, now: float, desc: Optional[str] = None) -> None:
        self.last, desc = now, desc or self.desc
        self.progress._activate(self)
        if not self.progress.bar:
            print(f"{desc}: {text}", file=self.progress.stream, flush=True)
            self.lines += 1
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(file=self.progress.stream, leave=False, dynamic_ncols=True, total=max(total, 1),
                            initial=n, desc=f"{desc}, {text}", bar_format="{desc} {percentage:3.0f}%|{bar}|")
            return
        self.bar.total, self.bar.n = max(total, 1), n
        self.bar.set_description_str(f"{desc}, {text}")  # redraws

    def close(self, text: Optional[str], desc: Optional[str] = None) -> None:
        """Clear the bar, or write the last state if lines were written."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines and text is not None:
            print(f"{desc or self.desc}: {text}", file=self.progress.stream, flush=True)
            self.lines = 0


class _Solver:
    """The solver loop's ``on_step`` hook: steps, ||grad f|| against the tolerance, rate, ETA."""

    def __init__(self, display: _Display):
        self.display, self.part, self.state = display, 1, None
        display.finish = self.close
        self.window: deque = deque()  # (time, step, log ||grad f||), sampled every WINDOW / 10 s

    def __call__(self, step: int, max_steps: int, grad_norm: float, tol: float) -> None:
        now = time.monotonic()
        if self.state is not None and step < self.state[0]:  # the next part starts again at step 0
            self.part += 1
            self.window.clear()
        self.state = (step, max_steps, grad_norm, tol)
        if not self.window or now - self.window[-1][0] >= WINDOW / 10:
            self.window.append((now, step, _log(grad_norm)))
            while len(self.window) > 2 and now - self.window[1][0] >= WINDOW:
                self.window.popleft()
        if self.display.due(now):
            done, left, text = self.estimate(now)
            self.display.show(text, done, done + left, now, self.desc)

    @property
    def desc(self) -> str:
        return self.display.desc if self.part == 1 else f"{self.display.desc}, part {self.part}"

    def estimate(self, now: float):
        """(steps done, steps expected to remain, the text of the line) of the current state."""
        step, max_steps, g, tol = self.state
        t0, s0, log0 = self.window[0]
        rate = (step - s0) / (now - t0) if step > s0 and now > t0 else None
        slope = (_log(g) - log0) / (step - s0) if step > s0 else 0.0
        left, capped = max_steps - step, True
        if g < tol:
            left, capped = 0, False
        elif tol > 0 and slope < 0:
            to_tol = (math.log(tol) - _log(g)) / slope
            left, capped = min(left, to_tol), to_tol >= left
        target = f" (tol {tol:.0e})" if tol > 0 else ""
        text = f"step {step}/{max_steps}, ||grad f|| {g:.2e}{target}"
        if rate is not None:
            eta = "0 s" if left == 0 else duration_text(left / rate)
            text += f", {rate:.3g} steps/s, ETA {'<= ' if capped else ''}{eta}"
        return step, left, text

    def close(self) -> None:
        self.display.close(self.estimate(time.monotonic())[2] if self.state else None, self.desc)


class _Counter:
    """An ``on_X(done, total)`` hook: items done of a total, rate, ETA."""

    def __init__(self, display: _Display, unit: str):
        self.display, self.unit, self.t0, self.state = display, unit, time.monotonic(), None
        display.finish = self.close

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        self.state = (done, total)
        if self.display.due(now):
            self.display.show(self.text(now), done, total, now)

    def text(self, now: float) -> str:
        done, total = self.state
        text = f"{done}/{total} {self.unit}"
        if 0 < done < total and now > self.t0:
            rate = done / (now - self.t0)
            text += f", {rate:.3g}/s, ETA {duration_text((total - done) / rate)}"
        return text

    def close(self) -> None:
        self.display.close(self.text(time.monotonic()) if self.state else None)


class Progress:
    """The progress of one command on ``stream`` (default stderr).

    ``bar``: draw tqdm bars (default: when ``stream`` is a terminal), else write lines every
    ``every`` seconds (default ``LINE_EVERY``). ``quiet``: make no hooks, write nothing. Used as
    a context manager, it closes (clears) every display it made when the command ends, also on
    an error, so an error message stays one line.
    """

    def __init__(self, quiet: bool = False, stream: Optional[TextIO] = None, bar: Optional[bool] = None,
                 every: Optional[float] = None):
        self.quiet = quiet
        self.stream = sys.stderr if stream is None else stream
        self.bar = _isatty(self.stream) if bar is None else bar
        self.every = LINE_EVERY if every is None else every
        self._open: List = []
        self._active: Optional[_Display] = None

    def solver(self, desc: str = "solve") -> Optional[Callable[[int, int, float, float], None]]:
        """A solver loop's ``on_step`` hook showing steps, ||grad f||, rate and ETA (None if quiet)."""
        return None if self.quiet else self._keep(_Solver(_Display(self, desc)))

    def counter(self, desc: str, unit: str) -> Optional[Callable[[int, int], None]]:
        """An ``on_X(done, total)`` hook counting ``unit`` (e.g. ``"spectra"``); None if quiet."""
        return None if self.quiet else self._keep(_Counter(_Display(self, desc), unit))

    def line(self, text: str) -> None:
        """One line of progress (a stage starting or ending), unless quiet."""
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        for hook in self._open:
            hook.close()
        self._open, self._active = [], None

    def _activate(self, display: _Display) -> None:
        """One display at a time: the one that shows now ends the one before (its bar cleared)."""
        if self._active is not None and self._active is not display:
            self._active.finish()
        self._active = display

    def _keep(self, hook):
        self._open.append(hook)
        return hook

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf
