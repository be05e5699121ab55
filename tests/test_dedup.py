"""Exact and MinHash near-duplicate detection."""
import numpy as np

from occi.corpora.config import DedupConfig
from occi.corpora.dedup import MinHasher, exact_key, find_duplicates

BASE = (
    "Der kleine Bahnhof am Rand des Dorfes wurde im Jahr neunzehnhundertzwölf gebaut und diente "
    "lange Zeit als Treffpunkt für Händler, Bauern und Reisende aus den umliegenden Tälern. Heute "
    "halten dort nur noch zwei Züge am Tag, doch im alten Wartesaal hat ein Verein ein kleines "
    "Museum eingerichtet, das Fotografien, Fahrkarten und Uniformen aus hundert Jahren zeigt."
)
OTHER = (
    "Wer Brot backen möchte, braucht vor allem Geduld. Der Teig muss nach dem Kneten an einem "
    "warmen Ort ruhen, damit die Hefe arbeiten kann und kleine Blasen entstehen. Danach wird er "
    "noch einmal gefaltet, geformt und bei hoher Temperatur gebacken, bis die Kruste dunkel ist."
)


def test_exact_key_ignores_case_and_whitespace():
    assert exact_key(BASE) == exact_key("  " + BASE.upper().replace(" ", "   ") + "\n")
    assert exact_key(BASE) != exact_key(OTHER)


def test_minhash_is_deterministic_and_finds_near_duplicates():
    hasher = MinHasher(DedupConfig())
    near = BASE.replace("zwei Züge", "drei Züge")
    a, b, c = hasher.band_hashes(BASE), hasher.band_hashes(near), hasher.band_hashes(OTHER)
    assert a.shape == (14,) and a.dtype == np.uint64
    assert np.array_equal(a, MinHasher(DedupConfig()).band_hashes(BASE))
    assert (a == b).any()
    assert not (a == c).any()


def test_find_duplicates_keeps_first_of_each_cluster():
    hasher = MinHasher(DedupConfig())
    texts = [OTHER, BASE, BASE.replace("Museum", "Archiv"), BASE.upper(), OTHER + " Guten Appetit!", "Etwas ganz anderes hier."]
    exact = [exact_key(t) for t in texts]
    bands = np.stack([hasher.band_hashes(t) for t in texts])
    is_exact, is_near, original = find_duplicates(exact, bands)
    assert is_exact.tolist() == [False, False, False, True, False, False]
    assert is_near.tolist() == [False, False, True, False, True, False]
    assert original.tolist() == [0, 1, 1, 1, 0, 5]


def test_find_duplicates_clusters_are_transitive():
    bands = np.array([[1, 10], [1, 20], [2, 20], [3, 30]], dtype=np.uint64)
    _, is_near, original = find_duplicates(None, bands)
    assert is_near.tolist() == [False, True, True, False]
    assert original.tolist() == [0, 0, 0, 3]


def test_shingles_of_short_text_and_empty_text():
    hasher = MinHasher(DedupConfig())
    assert len(hasher.shingles("zwei Wörter")) == 1
    assert len(hasher.shingles("...")) == 1


# ---------------------------------------------------------------- MinHash kernels
# MinHasher hashes words and takes the minima in numba kernels; the plain numpy below is the rule
# they must match bit for bit (band hashes are compared across runs and machines).

def _reference_band_hashes(hasher: MinHasher, text: str) -> np.ndarray:
    import re

    import xxhash

    words = re.findall(r"\w+", text.lower())
    if not words:
        shingles = np.zeros(1, dtype=np.uint64)
    else:
        hashes = np.array([xxhash.xxh32_intdigest(w.encode("utf-8")) for w in words], dtype=np.uint64)
        n = min(hasher.n, len(hashes))
        count = len(hashes) - n + 1
        combined = np.zeros(count, dtype=np.uint64)
        for offset in range(n):
            combined = combined * np.uint64(1_000_003) + hashes[offset:offset + count]
        shingles = (combined ^ (combined >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    permuted = (shingles[:, None] * hasher.a + hasher.b) % np.uint64((1 << 61) - 1)
    rows = permuted.min(axis=0).reshape(hasher.bands, hasher.rows)
    return np.array([xxhash.xxh3_64_intdigest(row.tobytes()) for row in rows], dtype=np.uint64)


def test_xxh32_kernel_equals_the_library():
    import random

    import xxhash

    from occi.corpora.dedup import _xxh32

    rng = random.Random(5)
    samples = [bytes(rng.randrange(256) for _ in range(length)) for length in list(range(41)) * 20]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randint(41, 400))) for _ in range(200)]
    samples += ["Größe ΩμέγαΣ 😀 ﬁ".encode("utf-8") * k for k in range(6)]
    for data in samples:
        assert _xxh32(np.frombuffer(data, dtype=np.uint8), 0, len(data)) == xxhash.xxh32_intdigest(data), data


def test_minhash_kernels_equal_the_plain_numpy_rule():
    import random

    rng = random.Random(11)
    pieces = ["der", "Bahnhof", "ÉTÉ", "straße", "İstanbul", "ǅemal", "e\u0301", "_x_", "3,14", "٣", "Ωμέγα", "😀", "𝐀𝐁",
              "ﬁn", "\ud800", " ", "\n", "-", "...", "\u00a0", "日本語"]
    texts = ["", " ", "...", "zwei Wörter", BASE, OTHER, BASE.upper() + OTHER]
    for _ in range(300):
        size = rng.choice([1, 2, 4, 5, 6, 30, 400])
        texts.append(rng.choice(["", " "]).join(rng.choice(pieces) for _ in range(size)))
    for config in (DedupConfig(), DedupConfig(ngram_size=1, bands=3, rows=5, seed=4), DedupConfig(ngram_size=9)):
        hasher = MinHasher(config)
        for text in texts:
            assert np.array_equal(hasher.band_hashes(text), _reference_band_hashes(hasher, text)), repr(text)


def test_exact_key_kernel_equals_the_plain_rule():
    import random

    import pytest
    import xxhash

    rng = random.Random(12)
    pieces = ["Der", "BAHNHOF", "straße", "İ", "ΣΑΣ", " ", "  ", "\n", "\t", "\u00a0", "\u3000", "\x1c", "\x85", "😀", "ǅ"]
    texts = ["", " ", "\n \t", BASE, OTHER] + ["".join(rng.choice(pieces) for _ in range(rng.choice([1, 5, 50])))
                                              for _ in range(500)]
    for text in texts:
        assert exact_key(text) == xxhash.xxh3_128_digest(" ".join(text.lower().split()).encode("utf-8")), repr(text)
    with pytest.raises(UnicodeEncodeError):
        exact_key("lone \ud800 surrogate")
