"""Catalogue cases (``docs/errors.md``) for the user errors the fuzz corpus
(``tests/test_fuzz_corpus.py``) found printing a traceback: a ``--config`` that is a directory, a
teacher cache directory that is a file, ``fit-heads --layers``/``--epochs`` values the heads fit
refuses. Merged into ``tests/test_errors_catalogue.py``'s ``CASES`` (and so into the corpus)."""

from __future__ import annotations

GOOD = "sentence\tlabel\nthe movie was good\t1\nthe plot was bad\t0\nthe cast was not dull\t1\n"


def _glue(ctx):
    ctx.write("glue/SST-2/train.tsv", GOOD)
    ctx.write("glue/SST-2/dev.tsv", GOOD)
    return ctx.tmp / "glue"


CASES = {
    "config-is-directory": (lambda c: ["finetune", "--config", c.write("cfgdir/x", "").parent, "--output-dir", c.out],
                            r"config .*cfgdir is a directory, expected a YAML file"),
    "cache-dir-is-file": (lambda c: c.distill("--cache-dir", c.write("cache.txt", "mine")),
                          r"teacher cache directory .*cache\.txt exists and is a file; give a directory"),
    "fit-heads-option-invalid": (lambda c: ["fit-heads", "--teacher", c.teacher, "--task", "sst-2", "--data-dir", _glue(c),
                                            "--layers", "abc", "--output-dir", c.out],
                                 r"--layers 'abc': expected intermediate, all or comma-separated layer numbers"),
}
