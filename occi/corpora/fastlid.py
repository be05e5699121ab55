"""fastText supervised prediction, exact, with a per-word cache: language ID at a fraction of the
binding's cost on real text.

A supervised fastText model reads a line as its words (split on the seven separators of its
reader) plus the end-of-line token; each word brings its own input row (when in the vocabulary)
and the rows of its hashed character n-grams; the hidden vector is the mean of all those rows;
the output layer turns it into label probabilities. A word's rows are the same wherever it
occurs, so this module keeps, per distinct word, the sum of its rows and their number: a
document costs one dict lookup per word, one gather-and-sum, and one small output layer.

The rows and n-gram ids come from the fastText binding itself (`get_subwords`, which applies the
model's hashing and pruning; `get_input_vector`, which also reads a quantized input matrix; the
dense output matrix), so nothing of the model is re-read from its file. The output layer is
computed the way fastText computes it, in float32: hierarchical softmax as its tree search
(Huffman tree from the label counts, scores log(p + 1e-5) summed along the path, branches
below log(1e-5) pruned), softmax with log(p + 1e-5) scores. What differs is only the order of
the float additions of the hidden vector, so probabilities agree to about 1e-7
(tests/test_fastlid.py checks 1e-5 and the same labels on the demo corpus).

Models it does not reproduce (word n-grams, a quantized output matrix, other losses, an
unsupervised model) get `None` from `ExactFastText.for_model`: the caller keeps the binding.
"""
from __future__ import annotations

import numpy as np

EOS = "</s>"
_SEPARATORS = "\t\r\v\f\0"  # with " " and "\n": what fastText's reader splits words on
_LOG_FLOOR = np.float32(np.log(1e-5))  # std_log(threshold 0): fastText's search drops branches below it


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
    """word -> its row in the table of summed input rows; filled on first sight."""

    def __init__(self, owner: ExactFastText):
        super().__init__()
        self.owner = owner

    def __missing__(self, word: str) -> int:
        index = self.owner._add_word(word)
        self[word] = index
        return index


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
            self._sides = np.zeros(2 * len(self.labels) - 2)
            self._steps = np.zeros(2 * len(self.labels) - 1, dtype=np.float32)  # the last one: the padding step
        self._row_cache: dict[int, np.ndarray] = {}
        eos_ids = model.get_subwords(EOS)[1]
        self.eos = np.zeros(self.dim + 1)
        for i in eos_ids:
            self.eos[: self.dim] += self._input_row(int(i))
        self.eos[self.dim] = len(eos_ids)
        self._reset()

    @classmethod
    def for_model(cls, model, max_words: int = 500_000) -> ExactFastText | None:
        return None if unsupported(model) is not None else cls(model, max_words)

    def _reset(self) -> None:
        # row 0: words that add nothing (empty strings between separators, label tokens)
        self.table = np.zeros((1024, self.dim + 1))
        self.used = 1
        self.words = _WordRows(self)
        self.words[""] = 0

    def _input_row(self, index: int) -> np.ndarray:
        row = self._row_cache.get(index)
        if row is None:
            row = self._row_cache[index] = self.model.get_input_vector(index).astype(np.float32)
        return row

    def _add_word(self, word: str) -> int:
        if word.startswith(self.label_prefix):  # a label token: fastText leaves it out of the input
            return 0
        try:
            ids = self.model.get_subwords(word)[1]
        except (TypeError, UnicodeError):  # lone surrogates: the caller's fallback for the binding turns them into "?"
            ids = self.model.get_subwords(word.encode("utf-8", "replace").decode("utf-8"))[1]
        if self.used == len(self.table):
            self.table = np.concatenate([self.table, np.zeros_like(self.table)])
        entry = self.table[self.used]
        for i in ids:
            entry[: self.dim] += self._input_row(int(i))
        entry[self.dim] = len(ids)
        self.used += 1
        return self.used - 1

    def hidden(self, text: str) -> np.ndarray | None:
        """The mean of the input rows of the line (None: it has none)."""
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
        rows = np.fromiter(map(self.words.__getitem__, tokens), dtype=np.intp, count=len(tokens))
        total = self.table[rows].sum(axis=0) + self.eos
        count = total[self.dim]
        if count == 0:
            return None
        return total[: self.dim].astype(np.float32) * np.float32(1.0 / count)

    def predict(self, text: str, k: int = 1) -> list[tuple[str, float]]:
        """The k best (label, probability), best first, as the binding's predict(text, k)."""
        hidden = self.hidden(text)
        if hidden is None:
            return []
        logits = self.output @ hidden
        if self.softmax:
            p = np.exp(logits - logits.max())
            p /= p.sum()
            scores = np.log(p + 1e-5)
            best = np.argsort(-scores, kind="stable")[:k]
        else:
            best, scores = self._tree_search(logits, k)
        probs = np.exp(scores[best])
        return [(self.labels[i], float(p)) for i, p in zip(best.tolist(), probs.tolist())]

    def _tree_search(self, logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best labels of the hierarchical softmax, and the score (log(p + 1e-5) summed
        along the path from the root) of every label. fastText searches the tree depth first and
        drops a branch once its score falls below log(1e-5); here all the partial sums of every
        path come from one small product, and a label counts only if none of its partial sums
        fell below that floor."""
        e = np.exp(-logits)
        e += 1  # float32 all along, as fastText computes it: 1 + exp(-x) is exactly 1 for x > 16.6
        f = (1.0 / e.astype(np.float64)).astype(np.float32).astype(np.float64)
        sides = self._sides  # inner node i: 2i its left child (1 - f), 2i + 1 its right child (f)
        np.subtract(1.0, f, out=sides[0::2])
        sides[1::2] = f
        sides += 1e-5
        steps = self._steps
        steps[:-1] = np.log(sides)
        partial = steps[self.paths] @ self.prefix_sums
        scores = partial[:, -1]
        order = np.argsort(-scores, kind="stable")
        top = order[: k + 2]  # a margin for labels the search does not reach
        reached = partial[top].min(axis=1) >= _LOG_FLOOR
        if reached.sum() < k and len(top) < len(order):
            top = order
            reached = partial[top].min(axis=1) >= _LOG_FLOOR
        return top[reached][:k], scores


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
