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
