"""One step of a derivation, and its rendering as plain text and as Markdown with LaTeX (shared by the derivations)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

import sympy as sp

__all__ = ["Step", "steps_text", "steps_markdown"]


@dataclass
class Step:
    """One step of a derivation: a title, an explanation, and labelled equations."""

    title: str
    text: str
    equations: List[Tuple[str, sp.Expr]] = field(default_factory=list)  # (LaTeX lhs, rhs)


def steps_text(steps: List[Step]) -> List[str]:
    """Numbered steps as plain-text lines (shared by the derivations)."""
    lines = []
    for i, step in enumerate(steps, 1):
        lines += ["", f"== {i}. {step.title}", step.text]
        lines += [f"    {lhs}  =  {sp.sstr(rhs)}" for lhs, rhs in step.equations]
    return lines


def steps_markdown(steps: List[Step], tag: str) -> List[str]:
    """Numbered steps as Markdown lines, equations in display LaTeX tagged (tag1), (tag2), ..."""
    lines, k = [], 0
    for i, step in enumerate(steps, 1):
        lines += [f"## {i}. {step.title}", "", step.text, ""]
        for lhs, rhs in step.equations:
            k += 1
            lines += ["$$", f"{lhs} = {sp.latex(rhs)} \\tag{{{tag}{k}}}", "$$", ""]
    return lines
