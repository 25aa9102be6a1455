"""Derive the UFM global minimizer under CE and label smoothing, step by step.

    python derivations/minimizer.py           # print the derivation, regenerate the files
    python derivations/minimizer.py --check   # exit 1 if a committed file is stale

Regenerates ``derivations/minimizer.md`` (the derivation with LaTeX) and
``ufm/theory/_minimizer_generated.py`` (the compiled closed forms that
``ufm.theory.closed_form`` evaluates at run time, so sympy is never imported there).
"""
import argparse
import pathlib
import sys

from ufm.theory.symbolic import derive_minimizer, to_markdown, to_python, to_text

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUTPUTS = {
    ROOT / "derivations" / "minimizer.md": to_markdown,
    ROOT / "ufm" / "theory" / "_minimizer_generated.py": to_python,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--quiet", action="store_true", help="do not print the derivation")
    args = parser.parse_args(argv)
    derivation = derive_minimizer("label_smoothing")
    if not args.quiet:
        print(to_text(derivation), end="")
    stale = []
    for path, render in OUTPUTS.items():
        text = render(derivation)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
            print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    if stale:
        print("stale, regenerate with `python derivations/minimizer.py`: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
