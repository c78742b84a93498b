"""Data: readers (GLUE directory, CSV/TSV/JSONL files, Hugging Face datasets), encoding with each
model's own tokenizer, dynamic padding and length-grouped batching."""

from .batching import Batch, LengthGroupedBatchSampler, collate
from .encoding import EncodedSplit, HFTextEncoder, TextEncoder
from .readers import Example, Split, parse_columns, read_file, read_glue, read_hf, read_split

__all__ = [
    "Batch",
    "EncodedSplit",
    "Example",
    "HFTextEncoder",
    "LengthGroupedBatchSampler",
    "Split",
    "TextEncoder",
    "collate",
    "parse_columns",
    "read_file",
    "read_glue",
    "read_hf",
    "read_split",
]
