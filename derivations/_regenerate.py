"""The command line shared by the derivation scripts: print, regenerate, or check freshness."""
import argparse
import pathlib
import sys

from ufm._core.io import atomic_write_text

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(script: str, description: str, derive, to_text, outputs, argv=None) -> int:
    """Derive, print the text unless --quiet, then write each ``outputs[path](derivation)``
    atomically, or with --check compare them with the files on disk (exit 1 if one is stale)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--quiet", action="store_true", help="do not print the derivation")
    args = parser.parse_args(argv)
    derivation = derive()
    if not args.quiet:
        print(to_text(derivation), end="")
    stale = []
    for path, render in outputs.items():
        text = render(derivation)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            atomic_write_text(path, text)
            print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    if stale:
        print(f"stale, regenerate with `python derivations/{script}`: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
