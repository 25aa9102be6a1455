"""Derive the Hessian spectra of the UFM at its global minimizers, step by step.

    python derivations/hessian.py           # print the derivation, regenerate the files
    python derivations/hessian.py --check   # exit 1 if a committed file is stale

Regenerates ``derivations/hessian.md`` (the derivation with LaTeX and the spectra of the
four operators, logits, features, classifier and full) and
``ufm/theory/_hessian_generated.py`` (the compiled spectra that ``ufm.theory.spectra``
evaluates at run time, so sympy is never imported there). Takes about a minute.
"""
import argparse
import pathlib
import sys

from ufm.theory.symbolic_hessian import derive_hessian, hessian_to_markdown, hessian_to_python, hessian_to_text

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUTPUTS = {
    ROOT / "derivations" / "hessian.md": hessian_to_markdown,
    ROOT / "ufm" / "theory" / "_hessian_generated.py": hessian_to_python,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--quiet", action="store_true", help="do not print the derivation")
    args = parser.parse_args(argv)
    derivation = derive_hessian()
    if not args.quiet:
        print(hessian_to_text(derivation), end="")
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
        print("stale, regenerate with `python derivations/hessian.py`: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
