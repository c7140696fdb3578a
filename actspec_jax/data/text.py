"""A small word-level tokenizer for the movie reviews, with a vocabulary from training text only.

Normalisation: lower-case; HTML line breaks (``<br />``, ``<br/>``, ``<br>``) become spaces.
Tokens: runs of word characters with inner apostrophes (``don't``, ``it's``) and every other
non-space character on its own (``!``, ``.``, ``"``), matched by :data:`TOKEN_PATTERN`.

Ids: ``PAD = 0`` (padding, ignored by the models), ``UNK = 1`` (any token not in the
vocabulary), then the vocabulary words by decreasing training count (ties alphabetical),
keeping at most ``max_size`` ids in all and only words seen at least ``min_count`` times.

Encoding keeps the *first* ``length`` tokens of each text; longer texts are truncated and
counted (:attr:`Encoded.num_truncated`), so callers can report how much was cut.
"""

from __future__ import annotations

import collections
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from actspec_jax.errors import ActSpecError

__all__ = ["PAD", "PAD_ID", "TOKEN_PATTERN", "UNK", "UNK_ID", "Encoded", "Tokenizer", "tokenize"]

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
TOKEN_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"
_TOKEN_RE = re.compile(TOKEN_PATTERN)
_BREAK_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
_FORMAT = "actspec_jax.tokenizer"


def tokenize(text: str) -> list[str]:
    """Split one text into lower-case word and punctuation tokens (see module docstring)."""
    if not isinstance(text, str):
        raise ActSpecError(f"tokenize expects a str, got {type(text).__name__}.")
    return _TOKEN_RE.findall(_BREAK_RE.sub(" ", text).lower())


class Encoded(NamedTuple):
    """A batch of encoded texts.

    Attributes:
      tokens: int32 ``[N, length]`` token ids, right-padded with ``PAD_ID``.
      lengths: int32 ``[N]`` number of real (non-pad) tokens kept per text (≤ ``length``).
      num_truncated: how many texts had more than ``length`` tokens (their tail was cut).
      num_tokens_dropped: total number of tokens cut off by truncation.
    """

    tokens: np.ndarray
    lengths: np.ndarray
    num_truncated: int
    num_tokens_dropped: int

    def report(self) -> dict[str, int]:
        """Counts for logs and metadata: texts, truncated texts, dropped tokens."""
        return {
            "texts": len(self.tokens),
            "context": int(self.tokens.shape[1]),
            "truncated": self.num_truncated,
            "tokens_dropped": self.num_tokens_dropped,
        }


class Tokenizer:
    """Word-level tokenizer with a fixed vocabulary (``tokens[i]`` has id ``i``).

    Build one from training texts with :meth:`build`; save/load it as JSON so a trained
    model ships with the exact vocabulary it was trained on.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = tuple(str(t) for t in tokens)
        if len(tokens) < 2 or tokens[PAD_ID] != PAD or tokens[UNK_ID] != UNK:
            raise ActSpecError(f"a vocabulary must start with {PAD!r} (id 0) and {UNK!r} (id 1).")
        if len(set(tokens)) != len(tokens):
            raise ActSpecError("the vocabulary has duplicate tokens.")
        self.tokens = tokens
        self._ids = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], *, max_size: int = 10_000, min_count: int = 2) -> Tokenizer:
        """Vocabulary of the ``max_size − 2`` most frequent tokens of ``texts`` seen ≥ ``min_count`` times.

        Pass *training* texts only, so that validation and test words the model never saw
        map to ``UNK``.
        """
        if int(max_size) < 3:
            raise ActSpecError(f"max_size must be at least 3 (PAD, UNK and one word), got {max_size}.")
        if int(min_count) < 1:
            raise ActSpecError(f"min_count must be ≥ 1, got {min_count}.")
        counts: collections.Counter[str] = collections.Counter()
        for text in texts:
            counts.update(tokenize(text))
        if not counts:
            raise ActSpecError("cannot build a vocabulary from no text: pass at least one non-empty text.")
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls([PAD, UNK, *ranked[: int(max_size) - 2]])

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def token_id(self, token: str) -> int:
        """Id of one token (``UNK_ID`` if it is not in the vocabulary)."""
        return self._ids.get(token, UNK_ID)

    def ids(self, text: str) -> list[int]:
        """Ids of all tokens of ``text`` (no truncation, no padding)."""
        return [self._ids.get(t, UNK_ID) for t in tokenize(text)]

    def encode(self, texts: Sequence[str], length: int) -> Encoded:
        """Encode ``texts`` to int32 ``[N, length]``: first ``length`` tokens, right-padded with 0."""
        if isinstance(texts, str):
            raise ActSpecError("encode expects a sequence of texts; wrap a single text in a list.")
        if int(length) < 1:
            raise ActSpecError(f"length must be ≥ 1 token, got {length}.")
        length = int(length)
        out = np.full((len(texts), length), PAD_ID, dtype=np.int32)
        lengths = np.zeros(len(texts), dtype=np.int32)
        truncated = dropped = 0
        for row, text in enumerate(texts):
            ids = self.ids(text)
            if len(ids) > length:
                truncated += 1
                dropped += len(ids) - length
                ids = ids[:length]
            out[row, : len(ids)] = ids
            lengths[row] = len(ids)
        return Encoded(out, lengths, truncated, dropped)

    def decode(self, ids: Iterable[int], *, skip_pad: bool = True) -> list[str]:
        """Tokens of an id sequence (padding dropped unless ``skip_pad=False``)."""
        return [self.tokens[int(i)] for i in ids if not (skip_pad and int(i) == PAD_ID)]

    # ------------------------------------------------------------------ I/O
    def to_json(self) -> dict[str, Any]:
        return {"format": _FORMAT, "version": 1, "token_pattern": TOKEN_PATTERN, "tokens": list(self.tokens)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON (one list of tokens; id = position)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise ActSpecError(f"no vocabulary file at {path}.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ActSpecError(f"{path} is not valid JSON: {err}.") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT or "tokens" not in data:
            raise ActSpecError(f"{path} is not an actspec_jax tokenizer file.")
        if data.get("token_pattern") != TOKEN_PATTERN:
            raise ActSpecError(
                f"{path} was written with a different token pattern ({data.get('token_pattern')!r}); "
                "its ids would not match this tokenizer's tokens."
            )
        return cls(data["tokens"])
