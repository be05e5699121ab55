"""`occi data prepare` encodes word by word through a cache (occi/data/encoder.py): the ids must be
exactly SentencePiece's own for the whole document, on text built to find the edge cases (runs of
spaces that whitespace-only pieces could merge across, literal "▁", newlines, byte fallback,
special tokens written as text, empty and all-space documents), and models where words do
interact must be encoded whole."""
from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import sentencepiece as spm
import yaml

from occi import config as run_config
from occi.data import encoder as encoder_module
from occi.data.bpe import MAX_WORD, BpeTables, model_proto
from occi.data.encoder import DocumentEncoder, words_are_independent
from occi.data.wordtable import WordTable
from occi.tokenizer.spm_train import train_sentencepiece

# Training text written for this test: prose in a few languages, and indented code and tables,
# so that the vocabulary learns whitespace-only pieces ("▁▁", "▁▁▁▁") beside words.
TRAINING_LINES = [
    "Le conseil municipal se réunit le premier lundi de chaque mois à la mairie.",
    "Die Gemeinde  veröffentlicht   den Haushaltsplan   jedes Jahr im Frühjahr.",
    "Η βιβλιοθήκη της πόλης είναι ανοιχτή κάθε μέρα εκτός από την Κυριακή.",
    "Kaupungin kirjasto on auki joka päivä paitsi sunnuntaina.",
    "    def total(items):",
    "        return sum(item.price for item in items)",
    "    if count  >  0:",
    "            print('done')",
    "name        value    unit",
    "length      12       cm",
    "width        7       cm",
    "Björn  och  Åsa  bor  i  Göteborg  sedan  år  2019.",
]
EDGES = [" ", "  ", "▁", "\n", "\t", "\u00a0", "a", "in", "7", "é", "😀", "<unk>", "</s>", "<|user|>", "<reserved_0>"]


def train_model(folder: Path, **tokenizer) -> spm.SentencePieceProcessor:
    """A SentencePiece model trained the way `occi tokenizer train` trains it."""
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump({"name": "enc", "languages": ["fr"], "corpora": {"recipe": "demo"},
                                      "tokenizer": {"recipe": "demo", "vocab_size": 500, "hard_vocab_limit": False,
                                                    "special_tokens": ["<|user|>"], "reserved_tokens": 1,
                                                    **tokenizer}}))
    text = folder / "train.txt"
    text.write_text("\n".join(TRAINING_LINES * 20) + "\n", encoding="utf-8")
    train_sentencepiece(run_config.load(str(config)), text, folder / "tokenizer", len(TRAINING_LINES) * 20)
    return spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))


def hard_texts() -> list[str]:
    rng = random.Random(7)
    texts = ["".join(combo) for n in range(4) for combo in itertools.product(EDGES, repeat=n)]
    pieces = EDGES + [word for line in TRAINING_LINES for word in line.split(" ")]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    return texts + TRAINING_LINES + ["\n".join(TRAINING_LINES)]


def encode_in_batches(encoder: DocumentEncoder, texts: list[str], size: int = 500) -> list[list[int]]:
    """Batches as Python lists and as Arrow arrays of the type Parquet gives, in turn."""
    documents = []
    for start in range(0, len(texts), size):
        batch = texts[start:start + size]
        ids, lengths = encoder.encode(batch if start // size % 2 else pa.array(batch, type=pa.string()))
        assert ids.dtype == encoder.dtype and len(lengths) == len(batch)
        documents += [part.tolist() for part in np.split(ids, np.cumsum(lengths)[:-1])]
    return documents


@pytest.fixture(scope="module")
def bpe(tmp_path_factory) -> spm.SentencePieceProcessor:
    return train_model(tmp_path_factory.mktemp("bpe"))


def test_word_by_word_gives_sentencepiece_ids_for_every_document(bpe):
    pieces = [bpe.id_to_piece(i) for i in range(bpe.get_piece_size())]
    assert "▁▁" in pieces and any(set(p) == {"▁"} and len(p) >= 4 for p in pieces), "no whitespace-only pieces"
    assert words_are_independent(bpe)
    encoder = DocumentEncoder(bpe, np.uint16, threads=2)
    assert encoder.by_word
    texts = hard_texts()
    assert encode_in_batches(encoder, texts) == bpe.encode(texts, out_type=int)
    assert len(encoder.word_index) > 100


def test_encode_all_reads_ahead_in_order_and_raises_the_readers_errors(bpe):
    from occi.errors import OcciError

    encoder = DocumentEncoder(bpe, np.uint16, threads=2)
    texts = hard_texts()[-1000:]
    got = []
    for ids, lengths in encoder.encode_all(pa.array(texts[i:i + 64], type=pa.string()) for i in range(0, 1000, 64)):
        got += [part.tolist() for part in np.split(ids, np.cumsum(lengths)[:-1])]
    assert got == bpe.encode(texts, out_type=int)

    def broken_reader():
        yield texts[:10]
        raise OcciError("part-00001.parquet: not a Parquet file")

    with pytest.raises(OcciError, match="not a Parquet file"):
        list(encoder.encode_all(broken_reader()))


def test_a_consumer_that_stops_early_leaves_no_reader_thread(bpe):
    import threading

    encoder = DocumentEncoder(bpe, np.uint16, threads=1)
    before = threading.active_count()
    for _ in range(3):
        for _ in encoder.encode_all(["un deux trois"] * 10 for _ in range(100)):
            break
    assert threading.active_count() == before


def test_processor_options_and_null_texts(bpe, tmp_path):
    """A processor made to add <s>/</s> still gives plain ids; a null text is an error either way."""
    path = tmp_path / "m.model"
    path.write_bytes(bpe.serialized_model_proto())
    with_extras = spm.SentencePieceProcessor(model_file=str(path), add_bos=True, add_eos=True)
    texts = hard_texts()[-200:]
    assert encode_in_batches(DocumentEncoder(with_extras, np.uint16, threads=1), texts) == bpe.encode(texts, out_type=int)
    unigram = train_model(tmp_path, model_type="unigram")
    for sp in (bpe, unigram):
        with pytest.raises(ValueError, match="a text is null"):
            DocumentEncoder(sp, np.uint16, threads=1).encode(pa.array(["un", None], type=pa.string()))


def test_an_unknown_piece_that_starts_with_a_space(tmp_path):
    text = tmp_path / "train.txt"
    text.write_text("\n".join(TRAINING_LINES * 20) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp_path / "m"), model_type="bpe", vocab_size=500,
                                   hard_vocab_limit=False, byte_fallback=False, unk_piece="▁UNK",
                                   normalization_rule_name="identity", remove_extra_whitespaces=False,
                                   allow_whitespace_only_pieces=True, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "m.model"))
    assert words_are_independent(sp)
    texts = ["a 😀 b", "😀😀 c", "ünknown 世界 😀"] + hard_texts()[-300:]
    assert encode_in_batches(DocumentEncoder(sp, np.uint16, threads=1), texts) == sp.encode(texts, out_type=int)


def test_a_full_cache_keeps_its_words_and_changes_nothing(bpe, monkeypatch):
    monkeypatch.setattr(encoder_module, "CACHE_WORDS", 50)
    encoder = DocumentEncoder(bpe, np.int32, threads=1)
    texts = hard_texts()[-600:]
    assert encode_in_batches(encoder, texts, size=40) == bpe.encode(texts, out_type=int)
    every_word = {word for text in texts for word in encoder_module.WORDS.findall(" " + text)}
    assert len(every_word) > 200 and len(encoder.word_index) == 50


@pytest.mark.parametrize("settings", [{"model_type": "unigram"}], ids=["unigram"])
def test_models_where_words_interact_are_encoded_whole(tmp_path, settings):
    sp = train_model(tmp_path, **settings)
    assert not words_are_independent(sp)
    encoder = DocumentEncoder(sp, np.uint16, threads=1)
    assert not encoder.by_word
    texts = hard_texts()[-300:]
    assert encode_in_batches(encoder, texts) == sp.encode(texts, out_type=int)


@pytest.mark.parametrize("settings", [{"normalization_rule_name": "nmt_nfkc"}, {"remove_extra_whitespaces": True},
                                      {"split_by_whitespace": False}],
                         ids=["nfkc", "extra-whitespace-removed", "pieces-across-spaces"])
def test_other_sentencepiece_settings_are_recognised(tmp_path, settings):
    """Models trained elsewhere: a normalizer that rewrites text, or pieces that span a space."""
    text = tmp_path / "train.txt"
    text.write_text("\n".join(TRAINING_LINES * 20) + "\n", encoding="utf-8")
    options = {"model_type": "bpe", "vocab_size": 500, "hard_vocab_limit": False, "byte_fallback": True,
               "normalization_rule_name": "identity", "remove_extra_whitespaces": False, **settings}
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp_path / "m"), minloglevel=2, **options)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "m.model"))
    assert not words_are_independent(sp)
    texts = hard_texts()[-300:]
    assert encode_in_batches(DocumentEncoder(sp, np.uint16, threads=1), texts) == sp.encode(texts, out_type=int)


def with_pieces_changed(sp: spm.SentencePieceProcessor, change) -> spm.SentencePieceProcessor:
    """The same model with change(piece) applied to each of its pieces (a ModelProto.SentencePiece)."""
    model = model_proto(sp)
    for piece in model.pieces:
        change(piece)
    return spm.SentencePieceProcessor(model_proto=model.SerializeToString())


def test_compiled_bpe_gives_sentencepiece_ids_for_every_word(bpe):
    """occi/data/bpe.py against SentencePiece itself, word by word: byte fallback, spaces and "▁"
    inside words, and what it leaves to SentencePiece (a user-defined piece, an empty or long word)."""
    texts = hard_texts() + ["x" * (MAX_WORD - 1), "y" * MAX_WORD, "ab" * 300 + "😀"]
    words = sorted({word for text in texts for word in encoder_module.WORDS.findall(" " + text)})
    tables = BpeTables.of(bpe)
    ids, counts, merged = tables.encode(words)
    expected = bpe.encode([word for word, done in zip(words, merged) if done], out_type=int)
    assert [part.tolist() for part in np.split(ids, np.cumsum(counts[merged])[:-1])] == expected
    left = {word for word, done in zip(words, merged) if not done}
    specials = [bpe.id_to_piece(i) for i, piece in enumerate(model_proto(bpe).pieces)
                if piece.type == piece.Type.USER_DEFINED]
    pieces = {bpe.id_to_piece(i) for i in range(bpe.get_piece_size())}
    odd = {c for s in specials for c in s if c not in pieces}  # in a piece, yet no piece itself
    assert "<|user|>" in specials and odd
    assert left == {w for w in words if not w or len(w) >= MAX_WORD or any(s in w for s in specials) or set(w) & odd}
    assert "" in left and "x" * (MAX_WORD - 1) not in left and "y" * MAX_WORD in left
    byte_pieces = {bpe.piece_to_id(f"<0x{b:02X}>") for b in "😀".encode()}
    assert byte_pieces <= set(ids.tolist())  # a character in no piece: its UTF-8 bytes, as SentencePiece writes them
    assert any(" " in w and "▁" in w for w in words if w not in left)


@pytest.mark.parametrize("scores", ["equal", "shuffled"])
def test_compiled_bpe_breaks_ties_and_follows_scores_as_sentencepiece_does(bpe, scores):
    """Every merge a tie (SentencePiece takes the leftmost pair), or the scores in another order."""
    rng = random.Random(3)
    sp = with_pieces_changed(bpe, lambda piece: setattr(piece, "score", 0.0 if scores == "equal" else rng.random()))
    encoder = DocumentEncoder(sp, np.uint16, threads=1)
    assert encoder.bpe is not None
    texts = hard_texts()
    assert encode_in_batches(encoder, texts) == sp.encode(texts, out_type=int)


def test_a_vocabulary_with_unused_pieces_is_left_to_sentencepiece(bpe):
    """SentencePiece splits an unused piece again after merging; occi/data/bpe.py does not follow that."""
    unused = model_proto(bpe).SentencePiece.Type.UNUSED
    longest = max(range(bpe.get_piece_size()), key=lambda i: len(bpe.id_to_piece(i)) if bpe.is_unknown(i) is False
                  and not bpe.is_control(i) and not bpe.is_byte(i) else 0)
    sp = with_pieces_changed(bpe, lambda piece: piece.piece == bpe.id_to_piece(longest) and setattr(piece, "type", unused))
    assert sp.is_unused(longest) and BpeTables.of(sp) is None
    encoder = DocumentEncoder(sp, np.uint16, threads=1)
    assert encoder.by_word and encoder.bpe is None
    texts = hard_texts()[-500:] + [bpe.id_to_piece(longest).replace("▁", " ")] * 3
    assert encode_in_batches(encoder, texts) == sp.encode(texts, out_type=int)


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_irregular_texts_are_found_in_arrows_bytes_as_python_finds_them(kind):
    texts = hard_texts()
    expected = [not t or t.startswith(" ") or "  " in t or "▁" in t for t in texts]
    array = pa.array(texts, type=kind)
    assert encoder_module.irregular_texts(array).tolist() == expected
    assert encoder_module.irregular_texts(array.slice(100, 700)).tolist() == expected[100:800]
    assert 0 < sum(expected) < len(expected)


def test_the_word_table_finds_exactly_the_words_added():
    """The cache's compiled index: bytes compared, so only a word added is found, with its slot,
    whatever the array's type and offset."""
    words = ["", "a", "ab", "ba", "é", "e\u0301", "😀", "▁a", "a b", "Zürich", "zürich"] + [f"w{k}" for k in range(40)]
    table = WordTable(capacity=len(words))
    assert len(table.table) == 128
    for kind in (pa.string(), pa.large_string()):
        assert table.lookup(pa.array(words, type=kind)).tolist() == [-1] * len(words)
    added = pa.array(["x"] + words, type=pa.large_string()).slice(1)
    table.add(added, np.arange(0, len(words), 2), 1000 + np.arange(0, len(words), 2))
    table.add(pa.array(words, type=pa.string()), np.arange(1, len(words), 2), 1000 + np.arange(1, len(words), 2))
    assert len(table) == len(words)
    queries = words + ["b", "a ", "abc", "w40", "Zurich", "😁"]
    for kind in (pa.string(), pa.large_string()):
        assert table.lookup(pa.array(queries, type=kind)).tolist() == list(range(1000, 1000 + len(words))) + [-1] * 6
    assert table.lookup(pa.array(queries, type=pa.string()).slice(3, 2)).tolist() == [1003, 1004]
    assert table.lookup(pa.array([], type=pa.string())).tolist() == []
    with pytest.raises(ValueError, match="do not fit"):
        table.add(pa.array(["new"]), np.array([0]), np.array([7]))
