"""Where a cell chose its epoch — off the test set (the carved validation split) or on it — and
how the report says so. One place for the rule :mod:`.claims` and :mod:`.report_md` both apply."""

from __future__ import annotations

from typing import Any

#: ``result["selection"]["split"]`` of a cell whose epoch was chosen off the test set
SELECTED_OFF_TEST = "validation"


def selected_on(run: Any) -> str:
    """Where the cell's epoch was chosen: ``validation`` (off the test set) or ``test set``."""
    sel = run.result.get("selection")
    split = sel.get("split") if isinstance(sel, dict) else None
    return SELECTED_OFF_TEST if split == SELECTED_OFF_TEST else "test set"


def on_test(runs: list[Any]) -> int:
    """How many of these cells chose their epoch on the test set."""
    return sum(selected_on(r) != SELECTED_OFF_TEST for r in runs)


def selected_where(runs: list[Any]) -> str:
    """How the 'best' epoch of these cells was chosen, in a few words (a table caption)."""
    n = on_test(runs)
    if not n:
        return "the epoch selected on the validation split carved from the training set"
    return "the epoch selected on dev itself" + ("" if n == len(runs) else f" in {n} of {len(runs)} cells")


def best_note(runs: list[Any]) -> str:
    """The report's reading note on 'best' for these cells."""
    n = on_test(runs)
    if not n:
        return ("- **best**: the epoch with the highest main metric on the validation split carved from the training "
                "set (no choice looks at dev, which is the test set here), scored once on dev: the primary score; "
                "**last**: the final epoch. Both are kept separate.")
    part = "" if n == len(runs) else f" ({n} of {len(runs)} cells; the others on a carved validation split)"
    return ("- **best**: the epoch whose dev main metric was highest" + part + " (the model is selected on the same dev "
            "set, so this is optimistic); **last**: the final epoch (no selection on dev). Both are kept separate.")
