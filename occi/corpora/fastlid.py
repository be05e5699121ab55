"""fastText supervised prediction re-implemented, bit for bit, with a per-word cache.

A supervised fastText model reads a line as its words (split on the seven separators of its
reader) plus the end-of-line token; each word brings its own input row (when in the vocabulary)
and the rows of its hashed character n-grams; the hidden vector is the mean of all those rows;
the output layer turns it into label probabilities. A word's rows are the same wherever it
occurs, so the places of each distinct word's rows are looked up once and kept.

The n-gram ids and the rows come from the binding itself (`getSubwords`, which applies the
model's hashing and pruning; `getInputVector`, which also reads a quantized input matrix; the
dense output matrix): nothing of the model file is re-read. Everything after the lookup is
fastText's float32 arithmetic in fastText's order (the rows added one after the other, dot
products term by term, the hierarchical softmax's depth-first search with its floor at
log(1e-5) over the Huffman tree rebuilt from the label counts, softmax with log(p + 1e-5)
scores, the C library's expf), so labels and probabilities equal the binding's bit for bit:
corpora output stays byte-identical (its 4-decimal scores flip on a 1e-7 difference).

Faster than the binding only where words repeat: a word met for the first time costs several
times fastText's per-word work (bench/README.md), hence opt-in (`corpora.langid.word_cache`).
Models it does not reproduce (word n-grams, a quantized output matrix, other losses, an
unsupervised model) get `None` from `ExactFastText.for_model`: the caller keeps the binding.
"""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

EOS = "</s>"
_SEPARATORS = "\t\r\v\f\0"  # with " " and "\n": what fastText's reader splits words on
_LOG_FLOOR = np.float32(np.log(1e-5))  # std_log(threshold 0): fastText's search drops branches below it
_NO_ROWS = np.zeros(0, dtype=np.intp)
_LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
_LIBM.expf.restype, _LIBM.expf.argtypes = ctypes.c_float, [ctypes.c_float]


def unsupported(model) -> str | None:
    """Why `ExactFastText` cannot reproduce this model's predictions (None: it can)."""
    args = model.f.getArgs()
    if args.model.name != "supervised":
        return "not a supervised model"
    if args.loss.name not in ("hs", "softmax"):
        return f"loss {args.loss.name} (only hs and softmax are reproduced)"
    if args.loss.name == "hs" and len(model.get_labels()) < 2:
        return "a single label"
    if args.wordNgrams > 1:
        return f"wordNgrams {args.wordNgrams} (word n-grams depend on the neighbours)"
    if model.f.isQuant() and args.qout:
        return "quantized output matrix"
    return None


class _WordRows(dict):
    """word -> the places of its input rows (its own, then its n-grams') in the table of rows met
    so far; filled on first sight."""

    def __init__(self, owner: ExactFastText):
        super().__init__()
        self.owner = owner

    def __missing__(self, word: str) -> np.ndarray:
        places = self[word] = self.owner._add_word(word)
        return places


class ExactFastText:
    """The predictions of a loaded fastText model (`fasttext.load_model`), k best labels with their
    probabilities, as the binding's `predict(text, k)` gives them."""

    def __init__(self, model, max_words: int = 500_000):
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"ExactFastText cannot reproduce this model: {reason}")
        args = model.f.getArgs()
        self.model = model
        self.dim = args.dim
        self.label_prefix = args.label
        self.max_words = max_words
        self.softmax = args.loss.name == "softmax"
        labels, counts = model.get_labels(include_freq=True)
        self.labels = list(labels)
        output = np.array(model.f.getOutputMatrix(), dtype=np.float32)
        if self.softmax:
            self.output = output
        else:
            self.output = output[: len(self.labels) - 1]  # hs: one row per inner node
            self.paths = _huffman_paths([int(c) for c in counts])
            depth = self.paths.shape[1]
            self.prefix_sums = np.triu(np.ones((depth, depth), dtype=np.float32))  # steps -> partial sums
            self._steps = np.zeros(2 * len(self.labels) - 1, dtype=np.float32)  # the last one: the padding step
        self.output_t = np.ascontiguousarray(self.output.T)  # dot products summed term by term, as fastText
        self.eos_ids = [int(i) for i in model.get_subwords(EOS)[1]]
        import fasttext_pybind  # the binding's own module (fasttext.FastText imports it the same way)

        self._vector = fasttext_pybind.Vector(self.dim)  # what getInputVector fills
        self._reset()

    @classmethod
    def for_model(cls, model, max_words: int = 500_000) -> ExactFastText | None:
        return None if unsupported(model) is not None else cls(model, max_words)

    def _reset(self) -> None:
        self.rows = np.zeros((4096, self.dim), dtype=np.float32)  # the input rows met so far
        self.row_of: dict[int, int] = {}  # fastText's row id -> its place in self.rows
        self.words = _WordRows(self)
        self.words[""] = _NO_ROWS  # between two separators
        self.eos = self._places(self.eos_ids)

    def _places(self, ids) -> np.ndarray:
        places = []
        for i in ids:
            place = self.row_of.get(i)
            if place is None:
                place = self.row_of[i] = len(self.row_of)
                if place == len(self.rows):
                    self.rows = np.concatenate([self.rows, np.zeros_like(self.rows)])
                self.model.f.getInputVector(self._vector, i)
                self.rows[place] = self._vector
            places.append(place)
        return np.array(places, dtype=np.intp)

    def _add_word(self, word: str) -> np.ndarray:
        if word.startswith(self.label_prefix):  # a label token: fastText leaves it out of the input
            return _NO_ROWS
        try:
            ids = self.model.f.getSubwords(word, "strict")[1]
        except (TypeError, UnicodeError):  # lone surrogates: the caller's fallback for the binding turns them into "?"
            ids = self.model.f.getSubwords(word.encode("utf-8", "replace").decode("utf-8"), "strict")[1]
        return self._places(ids)

    def hidden(self, text: str) -> np.ndarray | None:
        """The mean of the input rows of the line, float32, bit for bit fastText's (None: no rows)."""
        if "\n" in text:
            raise ValueError("predict processes one line at a time (remove '\\n')")
        if len(self.words) > self.max_words:  # bounded memory: start over between documents
            self._reset()
        for separator in _SEPARATORS:
            if separator in text:
                text = text.replace(separator, " ")
        tokens = text.split(" ")
        if EOS in text and EOS in tokens:  # fastText stops reading the line at an end-of-line token
            tokens = tokens[: tokens.index(EOS)]
        places = list(map(self.words.__getitem__, tokens))
        places.append(self.eos)
        places = np.concatenate(places)
        if len(places) == 0:
            return None
        # reducing over the first axis adds the rows one after the other, in float32: fastText's sum
        total = np.add.reduce(self.rows[places], axis=0)
        return total * np.float32(1.0 / len(places))

    def predict(self, text: str, k: int = 1) -> list[tuple[str, float]]:
        """The k best (label, probability), best first, as the binding's predict(text, k)."""
        hidden = self.hidden(text)
        if hidden is None:
            return []
        logits = np.add.reduce(self.output_t * hidden[:, None], axis=0)
        if self.softmax:
            e = _expf_array(logits - logits.max())
            p = e / np.cumsum(e, dtype=np.float32)[-1]  # fastText: output[i] /= z, z summed term by term
            scores = _f32(np.log(_f64(p) + 1e-5))
            best = np.argsort(-scores, kind="stable")[:k]
        else:
            best, scores = self._tree_search(logits, k)
        return [(self.labels[i], _expf(float(scores[i]))) for i in best.tolist()]

    def _tree_search(self, logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best labels of the hierarchical softmax, and the score of every label: log(p +
        1e-5) summed along its path from the root, in float32, as fastText's depth-first search
        sums it. That search drops a branch once its score falls below log(1e-5); here one small
        product gives every path's sum closely enough to rank the labels, and the few best are
        then summed step by step, exactly, and kept only if no partial sum fell below the floor."""
        e = _expf_array(-logits)
        e += np.float32(1)
        f = _f32(1.0 / _f64(e))
        steps = self._steps  # inner node i: 2i its left child (1 - f), 2i + 1 its right child (f)
        steps[0:-1:2] = _f32(np.log(_f64(_f32(1.0 - _f64(f))) + 1e-5))
        steps[1:-1:2] = _f32(np.log(_f64(f) + 1e-5))
        close = steps[self.paths] @ self.prefix_sums
        order = np.argsort(-close[:, -1], kind="stable")
        take = k + 2  # a margin for labels whose order the product's rounding could swap
        while True:
            top = order[:take]
            along = np.cumsum(steps[self.paths[top]], axis=1, dtype=np.float32)
            reached = (along >= _LOG_FLOOR).all(axis=1)
            if reached.sum() >= k or take >= len(order):
                break
            take = len(order)  # some were pruned: sum every label exactly
        scores = np.full(len(self.labels), -np.inf, dtype=np.float32)
        scores[top[reached]] = along[reached, -1]
        best = top[reached]
        return best[np.argsort(-scores[best], kind="stable")[:k]], scores


def _expf(x: float) -> float:
    """std::exp of a float, from the C library (numpy's float32 exp differs in the last bit)."""
    return _LIBM.expf(x)


def _expf_array(x: np.ndarray) -> np.ndarray:
    """std::exp of each float: exp in double rounded to float, which is the C library's expf except
    where the double lies within a hair of halfway between two floats (the 29 bits that rounding
    drops read about 0x10000000); those few come from expf itself."""
    with np.errstate(over="ignore"):
        wide = np.exp(_f64(x))
        e = _f32(wide)
    dropped = (wide.view(np.int64) & 0x1FFFFFFF) - 0x10000000
    for i in np.flatnonzero(np.abs(dropped) < 0x400000).tolist():
        e[i] = _LIBM.expf(float(x[i]))
    return e


def _f32(x):
    return np.asarray(x, dtype=np.float32)


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _huffman_paths(counts: list[int]) -> np.ndarray:
    """Per label, the steps from the root to its leaf of fastText's hierarchical-softmax tree, as
    indices 2 * inner node + (1 for the right child), padded with the last index (a zero step).

    The tree is fastText's: labels sorted by count (as its dictionary keeps them), the two
    lightest of the remaining leaves and inner nodes joined at each step, the first as left child.
    """
    n = len(counts)
    size = 2 * n - 1
    count = [float(c) for c in counts] + [1e15] * (n - 1)
    parent = [-1] * size
    right = [False] * size
    leaf, node = n - 1, n
    for i in range(n, size):
        pair = []
        for _ in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                pair.append(leaf)
                leaf -= 1
            else:
                pair.append(node)
                node += 1
        count[i] = count[pair[0]] + count[pair[1]]
        parent[pair[0]] = parent[pair[1]] = i
        right[pair[1]] = True
    paths = []
    for label in range(n):
        steps, j = [], label
        while parent[j] != -1:
            steps.append(2 * (parent[j] - n) + int(right[j]))
            j = parent[j]
        paths.append(steps[::-1])
    depth = max(len(p) for p in paths)
    pad = 2 * (n - 1)
    return np.array([p + [pad] * (depth - len(p)) for p in paths], dtype=np.intp)
