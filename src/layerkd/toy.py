"""A small generated task and tiny models, for ``layerkd demo`` and the test-suite (offline).

The task, *compositional sentiment*, is built so that a bag of words cannot solve it and depth
helps: a review is one to three clauses joined by "and" or "but"; a clause's polarity is its
adjective's, flipped by each negator ("not", "never", "hardly"; two cancel out); the clause
after the last "but" decides (the first clause when there is none), the others are distractors.
3 % of the labels are flipped (noise). A pair variant labels whether two clauses agree.
"""

from __future__ import annotations

import random
from pathlib import Path

POSITIVE = ["good", "great", "fine", "lovely", "superb", "pleasant", "brilliant", "charming"]
NEGATIVE = ["bad", "awful", "dull", "boring", "terrible", "weak", "poor", "bland"]
NEGATORS = ["not", "never", "hardly"]
INTENSIFIERS = ["very", "really", "quite", "truly"]
NOUNS = ["movie", "film", "plot", "cast", "story", "script", "ending", "acting"]
FILLERS = ["the", "a", "this", "that", "it", "was", "is", "honestly", "frankly", "overall", "and"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIALS + sorted(set(POSITIVE + NEGATIVE + NEGATORS + INTENSIFIERS + NOUNS + FILLERS + ["but"]))

TOY_TASK = {"name": "toy-sentiment", "text_columns": ["sentence"], "label_column": "label", "labels": ["0", "1"],
            "metrics": ["accuracy"], "description": "generated compositional sentiment (layerkd demo)"}
TOY_PAIR_TASK = {"name": "toy-pair", "text_columns": ["sentence1", "sentence2"], "label_column": "label",
                 "labels": ["0", "1"], "metrics": ["accuracy", "f1"], "description": "generated: do two clauses agree?"}


def _clause(rng: random.Random) -> tuple[list[str], int]:
    positive = rng.random() < 0.5
    words = [rng.choice(["the", "this", "that", "a"]), rng.choice(NOUNS), rng.choice(["was", "is"])]
    n_neg = rng.choices([0, 1, 2], weights=[0.5, 0.35, 0.15])[0]
    words += [rng.choice(NEGATORS) for _ in range(n_neg)]
    negated = n_neg % 2 == 1
    if rng.random() < 0.4:
        words.append(rng.choice(INTENSIFIERS))
    words.append(rng.choice(POSITIVE if positive else NEGATIVE))
    return words, int(positive != negated)


def sentiment_examples(n: int, seed: int = 0, noise: float = 0.03, max_extra_clauses: int = 2) -> list[tuple[str, int]]:
    """``n`` (text, label) rows. ``max_extra_clauses=0`` gives single clauses (an easy variant)."""
    rng = random.Random(seed)
    out = []
    weights = [0.3, 0.45, 0.25][: max_extra_clauses + 1]
    for _ in range(n):
        words, label = _clause(rng)
        for _ in range(rng.choices(range(len(weights)), weights=weights)[0]):
            nxt, nxt_label = _clause(rng)
            if rng.random() < 0.5:
                words, label = words + ["but"] + nxt, nxt_label
            else:
                words = words + ["and"] + nxt
        if rng.random() < 0.3:
            words = [rng.choice(["honestly", "frankly", "overall"])] + words
        if rng.random() < noise:
            label = 1 - label
        out.append((" ".join(words), label))
    return out


def pair_examples(n: int, seed: int = 0) -> list[tuple[str, str, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, la = _clause(rng)
        b, lb = _clause(rng)
        out.append((" ".join(a), " ".join(b), int(la == lb)))
    return out


def write_sentiment_data(directory: str | Path, n_train: int = 2000, n_dev: int = 500, seed: int = 0, *,
                         noise: float = 0.03, max_extra_clauses: int = 2) -> tuple[Path, Path]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, n, s in (("train", n_train, seed), ("dev", n_dev, seed + 1)):
        p = d / f"{name}.tsv"
        rows = ["sentence\tlabel"] + [f"{t}\t{y}" for t, y in sentiment_examples(n, s, noise, max_extra_clauses)]
        p.write_text("\n".join(rows) + "\n", encoding="utf-8")
        paths.append(p)
    return paths[0], paths[1]


def write_pair_data(directory: str | Path, n_train: int = 400, n_dev: int = 100, seed: int = 0) -> tuple[Path, Path]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, n, s in (("train", n_train, seed), ("dev", n_dev, seed + 1)):
        p = d / f"{name}.tsv"
        rows = ["sentence1\tsentence2\tlabel"] + [f"{a}\t{b}\t{y}" for a, b, y in pair_examples(n, s)]
        p.write_text("\n".join(rows) + "\n", encoding="utf-8")
        paths.append(p)
    return paths[0], paths[1]


def write_tokenizer(directory: str | Path):
    """A word-level BERT tokenizer over the toy vocabulary (saved to ``directory``)."""
    from transformers import BertTokenizer  # noqa: PLC0415

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    tok = BertTokenizer(str(d / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(str(d))
    return tok


def write_tiny_bert(directory: str | Path, *, num_labels: int = 2, layers: int = 4, hidden: int = 64, heads: int = 4,
                    intermediate: int = 128, seed: int = 0) -> Path:
    """A randomly initialised tiny BERT (+ tokenizer) saved as a Hugging Face directory."""
    import torch  # noqa: PLC0415
    from transformers import BertConfig, BertForSequenceClassification  # noqa: PLC0415

    from .models.transformer import _quiet_transformers  # noqa: PLC0415

    _quiet_transformers()
    d = Path(directory)
    tok = write_tokenizer(d)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=intermediate, max_position_embeddings=128, num_labels=num_labels,
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model = BertForSequenceClassification(cfg)
    model.config.architectures = ["BertModel"]  # a "pretrained encoder": its head is not fine-tuned yet
    model.save_pretrained(str(d), safe_serialization=True)
    cfg_path = d / "config.json"
    from . import jsonio  # noqa: PLC0415

    data = jsonio.loads(cfg_path.read_text())
    data["architectures"] = ["BertModel"]
    cfg_path.write_text(jsonio.dumps(data, indent=2))
    return d
