"""Cache-only teachers: distil from a teacher whose weights are never loaded during training.

A teacher too large for the training machine's memory (an LLM classifier, say) can still teach
when every signal the recipe reads from it is cacheable — logits, pooled layer vectors, pseudo-
classifier logits (:mod:`layerkd.teacher_cache`). The teacher is loaded once, by
``layerkd cache build`` (on this machine or another one, with the cache directory copied over),
which writes the cache entries; ``layerkd distill --teacher-cache-only`` (``cache.only: true``)
then loads only the teacher's ``config.json`` and tokenizer — to check the pair, tokenise the data
and key the cache — and serves every teacher need from the cache.

**Keys.** A loaded teacher is keyed by the fingerprint of its weights in memory; a cache-only
teacher is never in memory, so both ``cache build`` and a cache-only run key it by its *files*
instead (:func:`teacher_identity`): the SHA-256 of ``config.json``, the weight files (read as
bytes, streamed, never deserialised — they must be present) and the tokenizer files, plus the
task's label order (a loaded teacher is reordered into it, :mod:`layerkd.models.labels`). These
entries are separate from those of a run that loads the teacher (keyed by its weights).

**Refused**, each with one line (exit code 2), before anything is written:

* a recipe that needs the teacher live (all-token hidden states, attention maps: ``tinybert``,
  ``internal`` …) or a two-stage method (``takd``);
* a student built from the teacher (``layers:``, ``bottom:``, ``config:``, ``init=teacher``);
* pseudo-classifier logits without fitted heads (``teacher.heads`` / ``--teacher-heads``);
* a cache entry that is missing: the message names it (field, pooling, split, rows, max length)
  and the ``layerkd cache build`` command that writes it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelError
from .models.base import ModelInfo
from .objectives.base import Needs
from .teacher_cache import TeacherCache

log = logging.getLogger("layerkd")

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                   "merges.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "added_tokens.json")
CUT_SPECS = ("layers", "bottom", "config")


def _hash_file(h, path: Path) -> None:
    h.update(f"{path.name}\0{path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)


def teacher_identity(path: str | Path, task) -> str:
    """The files' fingerprint of a teacher directory (see the module docstring)."""
    d = Path(path)
    if not d.is_dir():
        raise ModelError(f"teacher {path}: cache-only mode needs the teacher as a local model directory "
                         "(its files key the cache)")
    weights = sorted(p for p in d.iterdir() if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name.endswith(".index.json")))
    if not any(p.suffix in WEIGHT_SUFFIXES for p in weights):
        raise ModelError(f"teacher {path}: no weight files; cache-only mode reads them (as bytes, never loaded) "
                         "to identify the teacher the cache was built from")
    h = hashlib.sha256(b"layerkd-teacher-files-v1\0")
    for p in [d / "config.json", *weights, *(d / n for n in TOKENIZER_FILES if (d / n).is_file())]:
        _hash_file(h, p)
    h.update(repr(None if task is None else task.labels).encode())
    return "files:" + h.hexdigest()


class TeacherFiles:
    """A teacher known by its config, tokenizer and files only: what a cache-only run needs of it
    (``info``, ``text_encoder``, ``config``, ``tokenizer``, ``pooling``, ``cache_identity``), no weights."""

    kind = "transformer"

    def __init__(self, path: str | Path, task, *, trust_remote_code: bool = False):
        from transformers import AutoConfig, AutoTokenizer  # noqa: PLC0415

        from .data.encoding import HFTextEncoder  # noqa: PLC0415
        from .models.classifier_pooling import get_pooling  # noqa: PLC0415
        from .models.decoder import is_decoder_config, prepare_decoder  # noqa: PLC0415
        from .models.labels import label_permutation, model_label_names  # noqa: PLC0415
        from .models.load import is_fine_tuned  # noqa: PLC0415
        from .models.pooled_save import register_saved_type  # noqa: PLC0415
        from .models.transformer import _quiet_transformers  # noqa: PLC0415

        _quiet_transformers()
        where = str(path)
        if not (Path(where) / "config.json").is_file():
            raise ModelError(f"teacher {where}: cache-only mode needs a local model directory with a config.json")
        register_saved_type(where)
        try:
            self.config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
            self.tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load the config and tokenizer of {where!r}: {first}") from None
        if not is_fine_tuned(where):
            raise ModelError(f"{where} has no fine-tuned classification head; fine-tune it first (layerkd finetune)")
        if task is not None and int(self.config.num_labels) != task.num_labels:
            raise ModelError(f"{where} has a {self.config.num_labels}-label classifier but the task needs {task.num_labels} labels")
        if task is not None:  # the same rule as loading it: names must match (any order: cache build reorders)
            label_permutation(model_label_names(self), task.labels, task=task.name, where=where)
        self.is_decoder = is_decoder_config(self.config)
        if self.is_decoder:
            prepare_decoder(self.config, self.tokenizer, where)
        self.name = where
        self.pooling = get_pooling(self)
        self._encoder = HFTextEncoder(self.tokenizer)
        self.cache_identity = teacher_identity(where, task)

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def text_encoder(self):
        return self._encoder

    @property
    def info(self) -> ModelInfo:  # as TransformerClassifier.info, from the config alone
        cfg = self.config
        return ModelInfo(kind="transformer", num_layers=self.num_layers,
                         hidden_size=int(getattr(cfg, "hidden_size", getattr(cfg, "dim", 0))), num_labels=int(cfg.num_labels),
                         tokenizer_fingerprint=self._encoder.fingerprint,
                         num_heads=int(getattr(cfg, "num_attention_heads", getattr(cfg, "n_heads", 0)) or 0) or None,
                         has_cls=not self.is_decoder, supports_attentions=True, name=self.name)


class FilesKeyedCache(TeacherCache):
    """The teacher cache keyed by a teacher's ``cache_identity`` (its files) instead of its weights."""

    def _teacher_fp(self, model) -> str:
        ident = getattr(model, "cache_identity", None)
        return ident if ident else super()._teacher_fp(model)


class CacheOnlyCache(FilesKeyedCache):
    """Serves entries, never builds one: a missing or damaged entry is an error naming the command
    that builds it."""

    def __init__(self, root, *, hint: str, **kw):
        super().__init__(root, **kw)
        self.hint = hint

    def missing(self, model, heads, data, needs: Needs) -> list[tuple[str, str | None]]:
        return [w for w in wanted_fields(needs)
                if not (self.dir / self.key(model, heads, data, *w)[0] / "meta.json").is_file()]

    def _build(self, model, heads, data, fields, device):
        raise ConfigError(missing_message(self, data, fields))


def wanted_fields(needs: Needs) -> list[tuple[str, str | None]]:
    """The cache entries (field, pooling) that serve ``needs`` (the order of TeacherCache.source)."""
    out: list[tuple[str, str | None]] = []
    if "logits" in needs.teacher:
        out.append(("logits", None))
    if "layer_vectors" in needs.teacher:
        out += [("layer_vectors", p) for p in sorted(needs.teacher_poolings)]
    if "head_logits" in needs.teacher:
        out.append(("head_logits", None))
    return out


def needs_text(fields) -> str:
    return ",".join(f if p is None else f"{f}:{p}" for f, p in fields)


def missing_message(cache: CacheOnlyCache, data, fields) -> str:
    return (f"teacher cache (cache-only mode): no entry for the teacher's {needs_text(fields)} on {data.split.source} "
            f"({data.split.name}, {len(data)} rows, max length {data.max_length}) in {cache.root}; "
            f"build it with: {cache.hint} --needs {needs_text(fields)}")


def build_hint(cfg) -> str:
    """The ``layerkd cache build`` command (without ``--needs``) that writes a run's entries."""
    d = cfg.data
    custom = isinstance(cfg.task, dict) or d.columns is not None or d.extra_eval or d.validation != type(d.validation)()
    parts = ["layerkd cache build"]
    if custom:
        parts.append("--config <this run's config file>")
    else:
        parts += ["--teacher", cfg.teacher.path, "--task", str(cfg.task)]
        if d.data_dir is not None:
            parts += ["--data-dir", d.data_dir]
        elif d.hf_dataset is not None:
            parts += ["--hf-dataset", d.hf_dataset] + (["--hf-config", d.hf_config] if d.hf_config else [])
        else:
            parts += ["--train-file", str(d.train_file), "--dev-file", str(d.dev_file)]
        if d.train_subsample is not None:
            parts += ["--train-subsample", str(d.train_subsample)]
    if cfg.teacher.heads is not None and not custom:
        parts += ["--teacher-heads", cfg.teacher.heads]
    from .stages.distill import cache_root  # noqa: PLC0415

    parts += ["--max-length", str(cfg.train.max_length), "--cache-dir", str(cache_root(cfg))]
    return " ".join(parts)


def check_plan(cfg, method, student_spec: str) -> None:
    """What cache-only mode refuses before the teacher's metadata is even read (module docstring)."""
    if not cfg.cache.enabled:
        raise ConfigError("cache.only: cache-only mode serves the teacher from the cache; it cannot be combined with "
                          "--no-cache (cache.enabled: false)")
    if method.pipeline is not None:
        raise ConfigError(f"--teacher-cache-only: method {method.name!r} trains an assistant from the live teacher; "
                          "cache-only mode does not apply to it")
    kind = student_spec.strip().partition(":")[0]
    if kind in CUT_SPECS or "init=teacher" in student_spec.replace(" ", ""):
        raise ConfigError(f"--teacher-cache-only: student {student_spec!r} is built from the teacher model, which "
                          "cache-only mode never loads; give a pretrained student (a path), bilstm:… or cnn:…")


def check_needs(needs: Needs, cfg, method_name: str) -> None:
    live = sorted(needs.teacher & {"hidden_states", "attentions"})
    if live:
        raise ConfigError(f"--teacher-cache-only: method {method_name} needs the teacher's {', '.join(live)}, which "
                          "are never cached (the teacher must run live); drop --teacher-cache-only")
    if "head_logits" in needs.teacher and cfg.teacher.heads is None:
        raise ConfigError(f"--teacher-cache-only: method {method_name} reads the teacher's pseudo classifiers; give "
                          "fitted heads (--teacher-heads, from layerkd fit-heads) so that their outputs can be cached")


def check_entries(cache: CacheOnlyCache, teacher, heads, wanted: list[tuple[Any, Needs]]) -> None:
    """Every entry that training and its diagnostics will read, present before anything is written."""
    for data, needs in wanted:
        if needs.needs_teacher:
            missing = cache.missing(teacher, heads, data, needs)
            if missing:
                raise ConfigError(missing_message(cache, data, missing))
