"""The task instruction as token ids: a word vocabulary built from the training tasks.

The reference policy reads the instruction (openpi's ``prompt``) through a small learned word
embedding (:mod:`.model`). Its tokenizer is deliberately simple and fully stored in the checkpoint's
``config.json`` (``prompt_vocab``), so inference tokenizes exactly as training did:

* **words**: the text case-folded (``str.casefold``) and split on every run of characters that are
  not letters or digits (regex ``[^\\W_]+``: Unicode letters and digits), e.g.
  ``"Touch the BLUE cube, with the left-hand"`` → ``touch the blue cube with the left hand``;
* **vocabulary**: id 0 = padding (:data:`PAD_ID`), id 1 = unknown word (:data:`UNK_ID`), then the
  distinct words of the training tasks in sorted order from id 2. A word the training tasks do not
  contain (e.g. a colour never trained on) gets :data:`UNK_ID`;
* **fixed length** ``max_len`` = max(:data:`MIN_MAX_LEN`, the longest training task in words):
  shorter prompts are padded with :data:`PAD_ID` (mask False), longer ones are cut after ``max_len``
  words (so nothing past ``max_len`` words is read).

The model pools the embeddings of the *known* words (mask ``id >= 2``): padding and unknown words
do not take part (docs/training.md, "What is trained").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

PAD_ID = 0
UNK_ID = 1
#: first id of a real word.
FIRST_WORD_ID = 2
#: the shortest fixed prompt length, in words (the demo's instructions have 9).
MIN_MAX_LEN = 16
#: how a prompt is split into words (also written into ``config.json``).
TOKENIZER = "casefold, split on runs of non-alphanumerics (regex [^\\W_]+), words of the training tasks, PAD=0 UNK=1"
_WORD = re.compile(r"[^\W_]+")


def prompt_words(text: str) -> list[str]:
    """The words of ``text``: case-folded, split on runs of non-alphanumerics (module docstring)."""
    return _WORD.findall(str(text).casefold())


@dataclass(frozen=True)
class PromptVocab:
    """A word vocabulary of the training tasks and a fixed prompt length.

    Attributes:
        words: the known words; word ``words[i]`` has id ``i + FIRST_WORD_ID``.
        max_len: L, token ids per prompt.
    """

    words: tuple[str, ...]
    max_len: int

    def __post_init__(self) -> None:
        if self.max_len < 1:
            raise ValueError(f"PromptVocab.max_len must be >= 1, got {self.max_len}")
        if len(set(self.words)) != len(self.words):
            raise ValueError("PromptVocab.words has duplicates")
        bad = [w for w in self.words if prompt_words(w) != [w]]
        if bad:
            raise ValueError(f"PromptVocab.words must be case-folded single words, got {bad}")

    @property
    def size(self) -> int:
        """Number of ids (words + PAD + UNK): the embedding table's rows."""
        return len(self.words) + FIRST_WORD_ID

    @classmethod
    def from_tasks(cls, tasks: Iterable[str]) -> "PromptVocab":
        """The vocabulary of the training ``tasks`` (module docstring).

        Raises:
            ValueError: no task, or a task with no word (nothing to condition on).
        """
        tasks = [str(t) for t in tasks]
        if not tasks:
            raise ValueError("a prompt vocabulary needs at least one training task")
        split = [prompt_words(t) for t in tasks]
        empty = [t for t, w in zip(tasks, split) if not w]
        if empty:
            raise ValueError(f"training task(s) {empty} contain no word (letters or digits)")
        return cls(tuple(sorted({w for ws in split for w in ws})), max(MIN_MAX_LEN, max(len(w) for w in split)))

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        """``(ids (L,) int32, number of unknown words)`` of one prompt: each word's id,
        :data:`UNK_ID` for a word not in the vocabulary, padded with :data:`PAD_ID` / cut to L.

        Raises:
            ValueError: ``text`` has no word (letters or digits).
        """
        words = prompt_words(text)
        if not words:
            raise ValueError(f"prompt {str(text)[:80]!r} contains no word (letters or digits)")
        index = {w: i + FIRST_WORD_ID for i, w in enumerate(self.words)}
        ids = np.full((self.max_len,), PAD_ID, np.int32)
        known = [index.get(w, UNK_ID) for w in words[:self.max_len]]
        ids[:len(known)] = known
        return ids, sum(1 for i in known if i == UNK_ID)

    def encode_many(self, texts: Sequence[str]) -> np.ndarray:
        """(N, L) int32 ids of ``texts`` (:meth:`encode` each)."""
        return np.stack([self.encode(t)[0] for t in texts]) if texts else np.zeros((0, self.max_len), np.int32)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``config.json`` ``prompt_vocab``)."""
        return {"words": list(self.words), "max_len": self.max_len, "pad_id": PAD_ID, "unk_id": UNK_ID,
                "first_word_id": FIRST_WORD_ID, "tokenizer": TOKENIZER}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PromptVocab":
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: a missing/ill-typed field, or ids/tokenizer other than this module's (a
                checkpoint written by another tokenizer cannot be read with this one).
        """
        try:
            words, max_len = d["words"], d["max_len"]
            fixed = (d["pad_id"], d["unk_id"], d["first_word_id"], d["tokenizer"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"prompt_vocab is malformed: missing {exc}") from exc
        if fixed != (PAD_ID, UNK_ID, FIRST_WORD_ID, TOKENIZER):
            raise ValueError(f"prompt_vocab was written by another tokenizer: pad/unk/first ids and rule {fixed}, "
                             f"this code uses {(PAD_ID, UNK_ID, FIRST_WORD_ID, TOKENIZER)}")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words) or isinstance(max_len, bool) \
                or not isinstance(max_len, int):
            raise ValueError("prompt_vocab: 'words' must be a list of strings and 'max_len' an integer")
        return cls(tuple(words), max_len)
