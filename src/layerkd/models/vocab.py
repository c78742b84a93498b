"""The word-level vocabulary and text encoder of the BiLSTM and CNN students.

* **Tokenisation**: the text is lower-cased and split by the regular expression
  ``\\w+(?:'\\w+)*|[^\\w\\s]`` — runs of word characters (keeping inner apostrophes, so
  "don't" is one word) and single punctuation marks.
* **Vocabulary**: built from the training split's texts (both sides of a sentence pair); words
  seen fewer than ``min_freq`` times are dropped and at most ``max_size`` entries are kept
  (specials included), the most frequent first, ties broken alphabetically — so the same
  split always yields the same vocabulary. Ids 0, 1, 2 are ``[PAD]``, ``[UNK]``, ``[SEP]``;
  a word not in the vocabulary encodes as ``[UNK]``.
* **Pairs** are encoded as one sequence ``a [SEP] b``. Truncation to ``max_length`` (separator
  included) is longest-first, like the Hugging Face tokenizers: the longer side loses its last
  word until the pair fits. An empty text encodes as a single ``[UNK]`` so that no sequence is
  empty.
* **Fingerprint**: SHA-256 over the tokenisation rule and the ordered word list; it changes with
  any change of the vocabulary. Saved as ``vocab.json`` beside the model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import jsonio
from ..errors import ModelError

PAD, UNK, SEP = "[PAD]", "[UNK]", "[SEP]"
SPECIALS = (PAD, UNK, SEP)
TOKEN_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"
_TOKEN_RE = re.compile(TOKEN_PATTERN)
VOCAB_FILE = "vocab.json"


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks of ``text``."""
    return _TOKEN_RE.findall(text.lower())


class WordVocab:
    """An ordered word list; index = id. ``[PAD]``/``[UNK]``/``[SEP]`` are ids 0/1/2."""

    def __init__(self, words: Sequence[str]):
        words = list(words)
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise ModelError(f"vocabulary must start with {', '.join(SPECIALS)}")
        if len(set(words)) != len(words):
            raise ModelError("vocabulary has duplicate entries")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        h = hashlib.sha256(f"layerkd-word-vocab-v1|{TOKEN_PATTERN}|".encode())
        h.update(json.dumps(words, ensure_ascii=False).encode())
        self.fingerprint = h.hexdigest()

    pad_id = 0
    unk_id = 1
    sep_id = 2

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @classmethod
    def build(cls, texts: Iterable[str], *, min_freq: int = 1, max_size: int | None = None) -> WordVocab:
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(tokenize(t))
        kept = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[: max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + kept)

    def ids(self, text: str) -> list[int]:
        get = self.index.get
        return [get(w, self.unk_id) for w in tokenize(text)]

    # ------------------------------------------------------------------ io
    def save(self, out_dir: str | Path) -> None:
        data = {"format": 1, "token_pattern": TOKEN_PATTERN, "words": self.words}
        (Path(out_dir) / VOCAB_FILE).write_text(jsonio.dumps(data, ensure_ascii=False, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> WordVocab:
        p = Path(directory) / VOCAB_FILE
        if not p.exists():
            raise ModelError(f"{directory}: no {VOCAB_FILE} (the word vocabulary of this model)")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelError(f"{p}: not a readable vocabulary file") from None
        if data.get("token_pattern") != TOKEN_PATTERN:
            raise ModelError(f"{p}: written with another tokenisation rule; this layerkd version cannot encode for it")
        return cls(data["words"])


def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Longest-first truncation of ``a`` and ``b`` to ``budget`` ids in total."""
    excess = len(a) + len(b) - budget
    if excess <= 0:
        return a, b
    la, lb = len(a), len(b)
    for _ in range(excess):
        if la > lb:
            la -= 1
        else:
            lb -= 1
    return a[:la], b[:lb]


class WordTextEncoder:
    """A :class:`WordVocab` as a :class:`~layerkd.data.encoding.TextEncoder`."""

    def __init__(self, vocab: WordVocab):
        self.vocab = vocab

    @property
    def fingerprint(self) -> str:
        return self.vocab.fingerprint

    @property
    def pad_id(self) -> int:
        return self.vocab.pad_id

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, texts_a, texts_b, max_length):
        v = self.vocab
        out: list[list[int]] = []
        if texts_b is None:
            for a in texts_a:
                ids = v.ids(a)[:max_length]
                out.append(ids or [v.unk_id])
            return {"input_ids": out}
        if max_length < 3:
            raise ModelError(f"max_length {max_length} is too short for a sentence pair (a [SEP] b)")
        for a, b in zip(texts_a, texts_b, strict=True):
            ia, ib = _truncate_pair(v.ids(a) or [v.unk_id], v.ids(b) or [v.unk_id], max_length - 1)
            out.append(ia + [v.sep_id] + ib)
        return {"input_ids": out}
