"""Entry point of the `ttf` console script (filled in by the CLI work)."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("ttf: not built yet", file=sys.stderr)
    return 2


def entry() -> None:
    raise SystemExit(main())
