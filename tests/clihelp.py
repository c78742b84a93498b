"""Run the ``layerkd`` CLI in-process (exact exit codes and stderr, without a subprocess)."""

from __future__ import annotations

import sys


def run_cli(*args, capsys=None) -> tuple[int, str, str]:
    from layerkd import cli

    old = sys.argv
    sys.argv = ["layerkd", *map(str, args)]
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    out, err = ("", "")
    if capsys is not None:
        captured = capsys.readouterr()
        out, err = captured.out, captured.err
    return code, out, err


def assert_user_error(code: int, err: str, pattern: str) -> str:
    import re

    assert code == 2, f"exit code {code}, stderr: {err}"
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    assert re.search(pattern, lines[0]), f"{pattern!r} not in {lines[0]!r}"
    return lines[0]
