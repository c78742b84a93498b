"""Non-transformer students: a BiLSTM and a CNN, as Trace producers.

Spec strings (``--student``): ``bilstm[:key=value,…]`` and ``cnn[:key=value,…]``, e.g.
``bilstm:layers=2,hidden=300`` or ``cnn:layers=4,channels=256,kernels=3-5,gated=true``.

Options of both kinds:

* ``layers`` — number of blocks L (BiLSTM default 2, CNN default 4);
* ``embed`` — embedding size (default 300; with ``init=teacher`` the teacher's width);
* ``dropout`` — on the input of every block and before the classifier (default 0.1);
* ``pool`` — ``max`` (default) or ``mean``: the sentence pooling (see below);
* ``tokenizer`` — ``word`` (default: a word vocabulary built from the training split, see
  :mod:`layerkd.models.vocab`) or ``teacher`` (the teacher's word-piece tokenizer, with fresh
  embeddings); ``vocab_size`` (largest vocabulary, specials included; default 30000) and
  ``min_freq`` (default 2) apply to ``tokenizer=word`` only;
* ``init`` — ``random`` (default) or ``teacher``: the embedding table starts from the teacher's
  input (word-piece) embeddings. This needs the teacher's tokenizer, so ``init=teacher`` implies
  ``tokenizer=teacher`` (and refuses an explicit ``tokenizer=word``). The teacher matrix ``E``
  (rows × d_t) becomes the student's table through a fixed projection applied once at build
  time: an exact copy when ``embed = d_t``; when ``embed < d_t`` its top-``embed`` principal
  components, ``(E − mean(E)) · P`` with ``P`` the leading right singular vectors of the
  centred matrix (orthonormal columns, no whitening, so distances between tokens are kept as
  far as ``embed`` dimensions allow); when ``embed > d_t`` a copy into the first d_t columns,
  the rest zero. The table then trains like any other weight.

BiLSTM only: ``hidden`` (per direction, default 300), ``bidirectional`` (default true). The
width of every layer is ``d = hidden × (2 if bidirectional else 1)`` (the two directions
concatenated). Each layer is one forward and (if bidirectional) one backward single-layer
``nn.LSTM``, so that every layer's output is available. Padding never reaches a real token's
state, without packed sequences (several times slower on a CPU): layerkd batches are
right-padded (the attention mask is a prefix of ones), so the forward direction reads every
real token before any padding, and the backward direction reads each sequence reversed within
its own length (a gather), so padding again comes after the real tokens.

CNN only: ``channels`` (d, default 300), ``kernels`` (filter widths joined by ``-``, e.g.
``3-4-5``; default 3), ``gated`` (default true), ``residual`` (default true). A block runs one
"same"-length (zero-padded) 1-d convolution per width on the (dropped-out) input; with ``gated`` each has 2d
output channels and a GLU (Dauphin et al., 2017), otherwise d channels and a ReLU. Several
widths are concatenated and mapped back to d by a linear layer; the block's input is added
(``residual``) and a LayerNorm follows. Padding positions are zeroed before every convolution,
so they act exactly like the convolution's own zero padding: outputs at real tokens do not
depend on how far a batch is padded.

Common structure and the Trace:

* **Layer 0** is the embedding output mapped to width d by a linear layer (none when
  ``embed = d``); it is also the input of layer 1. Padding positions of every layer are zero.
* **Layer vectors**: there is no [CLS] token; ``Trace.sentence_pooling`` is the ``pool``
  option, so ``layer_vectors("cls")`` is the masked max (or mean) over real tokens of each of
  the L+1 layers. Hidden states (L+1 tensors ``[B, T, d]``) are returned when asked for.
* **Classifier**: the pooled final layer → dropout → ``Linear(d, num_labels)`` (one output for
  regression). No attention maps: token-aligned methods (tinybert, internal) refuse these
  students; layer-vector methods (pkd, alp, rail, ckd) use their projections, output-space ones
  (kd, universal, dih, ce) work directly.
* **Sentence pairs**: one sequence. With the word tokenizer ``a [SEP] b`` (longest-first
  truncation); with the teacher's tokenizer its own pair format (``[CLS] a [SEP] b [SEP]``),
  token type ids ignored. The encoder reads both texts jointly (no siamese encoder).
* **Two encodings per batch**: the student reads its own encoding (``batch.inputs["student"]``),
  the teacher — live or from the teacher cache — the teacher's; with ``tokenizer=teacher`` the
  fingerprints agree and the split is tokenised once for both.

Saved as a directory: ``layerkd_model.json`` (kind, every resolved option, label names),
``model.safetensors`` and the vocabulary (``vocab.json``) or, for ``tokenizer=teacher``, the
tokenizer's own files. :func:`load_rnn_cnn` restores it; :func:`layerkd.models.load.load_model`
(and so ``layerkd evaluate``) recognises such a directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import jsonio
from ..checkpoint import atomic_write_text, load_module, save_module
from ..data.encoding import HFTextEncoder
from ..errors import ModelError
from .base import ModelInfo
from .pooling import pool
from .rnn_cnn_options import parse_options
from .trace import Trace
from .vocab import WordTextEncoder, WordVocab
from .weights_check import check_safetensors

MODEL_FILE = "layerkd_model.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = 1


# ---------------------------------------------------------------------- helpers


def project_embeddings(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Teacher embedding rows ``[V, d_t]`` → ``[V, dim]`` (copy, PCA projection or zero-padded copy)."""
    w = weight.detach().float().cpu()
    d_t = w.shape[1]
    if dim == d_t:
        return w.clone()
    if dim > d_t:
        out = torch.zeros(w.shape[0], dim)
        out[:, :d_t] = w
        return out
    centred = w - w.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    p = vh[:dim].T  # [d_t, dim], orthonormal columns
    # a fixed sign per component (largest entry positive), so the result does not depend on the SVD routine
    signs = torch.sign(p.gather(0, p.abs().argmax(dim=0, keepdim=True)))
    return centred @ (p * signs)


def _texts(train_texts) -> list[str]:
    examples = getattr(train_texts, "examples", train_texts)
    out: list[str] = []
    for e in examples:
        if isinstance(e, str):
            out.append(e)
            continue
        out.append(e.text_a)
        if getattr(e, "text_b", None):
            out.append(e.text_b)
    return out


# ---------------------------------------------------------------------- models


class _RNNCNNBase(nn.Module):
    """Embeddings, layer-0 projection, classifier, Trace assembly, saving. Subclasses build the
    blocks and implement :meth:`encode_layers`."""

    kind = ""

    def __init__(self, config: dict[str, Any], encoder, *, name: str = ""):
        super().__init__()
        self.config = dict(config)
        self._encoder = encoder
        o = self.config["options"]
        self.width = self._width(o)
        self.pooling = o["pool"]
        self.embed = nn.Embedding(int(self.config["embedding_rows"]), o["embed"])
        self.input_proj = nn.Identity() if o["embed"] == self.width else nn.Linear(o["embed"], self.width)
        self.dropout = nn.Dropout(o["dropout"])
        self.classifier = nn.Linear(self.width, int(self.config["num_labels"]))
        self.name = name or self.config.get("name") or self.describe()

    def _width(self, o: dict[str, Any]) -> int:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def encode_layers(self, x: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Layers 1..L from layer 0 ``x`` ``[B, T, d]`` (zero at padding) and ``mask`` ``[B, T]``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ facts
    @property
    def num_layers(self) -> int:
        return int(self.config["options"]["layers"])

    @property
    def text_encoder(self):
        return self._encoder

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(kind=self.kind, num_layers=self.num_layers, hidden_size=self.width,
                         num_labels=int(self.config["num_labels"]), tokenizer_fingerprint=self._encoder.fingerprint,
                         num_heads=None, has_cls=False, supports_attentions=False, name=self.name)

    # ------------------------------------------------------------------ forward
    def forward(self, inputs: dict[str, torch.Tensor], *, hidden_states: bool = False, attentions: bool = False) -> Trace:
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = (ids != self._encoder.pad_id).long()
        x = self.input_proj(self.embed(ids))
        x = x * mask.unsqueeze(-1).to(x.dtype)
        states = [x, *self.encode_layers(x, mask)]
        sentence = pool(states[-1], mask, self.pooling)
        logits = self.classifier(self.dropout(sentence))
        return Trace(logits=logits, attention_mask=mask, hidden_states=tuple(states) if hidden_states else None,
                     sentence_pooling=self.pooling, source=self.name)

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = dict(self.config, format=FORMAT, kind=self.kind, name=self.name)
        if isinstance(self._encoder, WordTextEncoder):
            self._encoder.vocab.save(out)
        else:
            self._encoder.tokenizer.save_pretrained(str(out))
        save_module(self, out / WEIGHTS_FILE)
        atomic_write_text(out / MODEL_FILE, jsonio.dumps(meta, indent=2))


class BiLSTMClassifier(_RNNCNNBase):
    kind = "bilstm"

    def __init__(self, config: dict[str, Any], encoder, *, name: str = ""):
        super().__init__(config, encoder, name=name)
        o = self.config["options"]
        lstm = lambda: nn.LSTM(self.width, o["hidden"], batch_first=True)  # noqa: E731
        self.forward_lstms = nn.ModuleList([lstm() for _ in range(o["layers"])])
        self.backward_lstms = nn.ModuleList([lstm() for _ in range(o["layers"])]) if o["bidirectional"] else None

    def _width(self, o):
        return o["hidden"] * (2 if o["bidirectional"] else 1)

    def describe(self) -> str:
        o = self.config["options"]
        return f"bilstm(layers={o['layers']},hidden={o['hidden']}{',bi' if o['bidirectional'] else ''})"

    def encode_layers(self, x, mask):
        keep = mask.unsqueeze(-1).to(x.dtype)
        reverse = None
        if self.backward_lstms is not None:
            # position t of each sequence reversed within its own length (padding stays at the end)
            t = torch.arange(x.shape[1], device=x.device)[None, :]
            lengths = mask.sum(dim=1, keepdim=True)
            reverse = torch.where(t < lengths, lengths - 1 - t, t)
        out, h = [], x
        for i, fw in enumerate(self.forward_lstms):
            inp = self.dropout(h)
            y, _ = fw(inp)
            if reverse is not None:
                idx = reverse.unsqueeze(-1)
                yb, _ = self.backward_lstms[i](inp.gather(1, idx.expand(-1, -1, inp.shape[-1])))
                y = torch.cat([y, yb.gather(1, idx.expand(-1, -1, yb.shape[-1]))], dim=-1)
            h = y * keep
            out.append(h)
        return out


class _ConvBlock(nn.Module):
    def __init__(self, d: int, kernels: list[int], gated: bool, residual: bool, dropout: float):
        super().__init__()
        self.gated, self.residual = gated, residual
        self.convs = nn.ModuleList([nn.Conv1d(d, 2 * d if gated else d, k) for k in kernels])
        self.pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernels]  # "same" output length
        self.mix = nn.Linear(len(kernels) * d, d) if len(kernels) > 1 else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        h = self.dropout(x).transpose(1, 2)  # [B, d, T]; padding positions are zero
        parts = []
        for conv, pad in zip(self.convs, self.pads, strict=True):
            c = conv(F.pad(h, pad))
            parts.append(F.glu(c, dim=1) if self.gated else F.relu(c))
        h = self.mix(torch.cat(parts, dim=1).transpose(1, 2))
        if self.residual:
            h = x + h
        return self.norm(h) * keep


class CNNClassifier(_RNNCNNBase):
    kind = "cnn"

    def __init__(self, config: dict[str, Any], encoder, *, name: str = ""):
        super().__init__(config, encoder, name=name)
        o = self.config["options"]
        self.blocks = nn.ModuleList([
            _ConvBlock(self.width, o["kernels"], o["gated"], o["residual"], o["dropout"]) for _ in range(o["layers"])
        ])

    def _width(self, o):
        return o["channels"]

    def describe(self) -> str:
        o = self.config["options"]
        extra = ",gated" if o["gated"] else ""
        return f"cnn(layers={o['layers']},channels={o['channels']},kernels={'-'.join(map(str, o['kernels']))}{extra})"

    def encode_layers(self, x, mask):
        keep = mask.unsqueeze(-1).to(x.dtype)
        out, h = [], x
        for block in self.blocks:
            h = block(h, keep)
            out.append(h)
        return out


CLASSES: dict[str, type[_RNNCNNBase]] = {"bilstm": BiLSTMClassifier, "cnn": CNNClassifier}


# ---------------------------------------------------------------------- build / load


def build_rnn_cnn(kind: str, options: dict[str, str], task, *, teacher: nn.Module | None = None,
                  train_texts=None) -> _RNNCNNBase:
    """A fresh BiLSTM/CNN student for ``task`` from its spec options (see the module docstring).

    ``train_texts`` (a :class:`~layerkd.data.readers.Split`, or examples / strings) builds the
    word vocabulary; ``teacher`` supplies the tokenizer and embeddings for the ``teacher``
    options."""
    opts, given = parse_options(kind, options)
    where = f"student {kind}"
    if opts["init"] == "teacher":
        if "tokenizer" in given and opts["tokenizer"] != "teacher":
            raise ModelError(f"{where}: init=teacher copies word-piece embeddings and needs tokenizer=teacher")
        opts["tokenizer"] = "teacher"
    teacher_tok = getattr(teacher, "tokenizer", None)
    if opts["tokenizer"] == "teacher":
        if teacher is None or getattr(teacher, "kind", None) != "transformer" or teacher_tok is None:
            what = "init=teacher" if opts["init"] == "teacher" else "tokenizer=teacher"
            raise ModelError(f"{where}: {what} needs a transformer teacher")
        word_only = sorted(given & {"vocab_size", "min_freq"})
        if word_only:
            raise ModelError(f"{where}: {word_only[0]} applies to tokenizer=word only")
        # the teacher's own encoder object: its fingerprint is the one the teacher reports
        t_enc = getattr(teacher, "text_encoder", None)
        encoder: Any = t_enc if isinstance(t_enc, HFTextEncoder) else HFTextEncoder(teacher_tok)
        rows = len(teacher_tok)
        t_emb = teacher.hf.get_input_embeddings().weight if opts["init"] == "teacher" else None
        if t_emb is not None:
            rows = max(rows, t_emb.shape[0])
            if "embed" not in given:
                opts["embed"] = int(t_emb.shape[1])
    else:
        if train_texts is None:
            raise ModelError(f"{where}: tokenizer=word builds its vocabulary from the training split, but none was given")
        texts = _texts(train_texts)
        if not texts:
            raise ModelError(f"{where}: the training split is empty; cannot build a vocabulary")
        vocab = WordVocab.build(texts, min_freq=opts["min_freq"], max_size=opts["vocab_size"])
        encoder, rows, t_emb = WordTextEncoder(vocab), len(vocab), None
    config = {"options": opts, "num_labels": task.num_labels, "labels": None if task.labels is None else list(task.labels),
              "task": task.name, "embedding_rows": rows}
    model = CLASSES[kind](config, encoder)
    if t_emb is not None:
        with torch.no_grad():
            model.embed.weight[: t_emb.shape[0]].copy_(project_embeddings(t_emb, opts["embed"]))
    return model


def load_rnn_cnn(path: str | Path) -> _RNNCNNBase:
    """Load a BiLSTM/CNN saved by ``save_pretrained`` (eval mode)."""
    p = Path(path)
    try:
        meta = json.loads((p / MODEL_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{p}: no {MODEL_FILE}; not a saved BiLSTM/CNN model") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelError(f"{p / MODEL_FILE}: not valid JSON") from None
    kind = meta.get("kind")
    if kind not in CLASSES:
        raise ModelError(f"{p / MODEL_FILE}: unknown model kind {kind!r}; expected bilstm or cnn")
    if int(meta.get("format", 0)) > FORMAT:
        raise ModelError(f"{p / MODEL_FILE}: format {meta['format']} is newer than this layerkd reads ({FORMAT})")
    if meta["options"]["tokenizer"] == "teacher":
        from transformers import AutoTokenizer  # noqa: PLC0415

        try:
            encoder: Any = HFTextEncoder(AutoTokenizer.from_pretrained(str(p)))
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load the tokenizer saved in {p}: {first}") from None
    else:
        encoder = WordTextEncoder(WordVocab.load(p))
    config = {k: v for k, v in meta.items() if k not in ("format", "kind", "name")}
    model = CLASSES[kind](config, encoder, name=meta.get("name", ""))
    if not (p / WEIGHTS_FILE).exists():
        raise ModelError(f"{p}: no {WEIGHTS_FILE}")
    check_safetensors(p / WEIGHTS_FILE)  # truncated/corrupt: one ModelError line, not a SafetensorError
    try:
        load_module(model, p / WEIGHTS_FILE)
    except (RuntimeError, KeyError) as exc:
        raise ModelError(f"{p / WEIGHTS_FILE}: does not match {MODEL_FILE} ({str(exc).splitlines()[0]})") from None
    return model.eval()
