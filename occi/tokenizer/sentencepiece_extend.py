"""The new pieces of `tokenizer: {extend: ...}` written into a SentencePiece base's tokenizer.model,
so that the model file and the tokenizer.json beside it (Mistral, Llama 2, EuroLLM, Salamandra
ship both) stay one tokenizer.

SentencePiece's BPE joins, again and again, the adjacent pair of symbols whose concatenation is a
piece with the highest score; transformers' converter turns this into tokenizer.json merges: every
split (left, right) of a normal piece into two normal pieces, ranked by the piece (by its id: the
same order as the scores, except for pieces a model scores apart, such as Mistral's runs of
spaces, docs/tokenizers.md). So:
- each new piece is appended to the ModelProto as a NORMAL piece with a score below every other,
  lower for each later id (the order in which extend's merges join it);
- tokenizer.json gets the merges the converter would rank for the extended model that its base
  merges lack: the splits of each new piece, after all others, and the splits of an existing piece
  that a new piece makes possible (a new "▁Wort" lets "▁Wort" + "es" make "▁Wortes"), next to that
  piece's own merges. The base's merges keep their order, so text without new pieces keeps its ids.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from occi.errors import OcciError

NORMAL = 1  # ModelProto.SentencePiece.Type in sentencepiece_model.proto
BPE = 2  # TrainerSpec.ModelType


def read_model(path: Path):
    """The ModelProto of a SentencePiece BPE model file (one-line OcciError otherwise)."""
    from sentencepiece import sentencepiece_model_pb2  # loads sentencepiece: only when used

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as err:  # protobuf's DecodeError
        raise OcciError(f"{path}: not a SentencePiece model ({type(err).__name__})") from None
    if not proto.pieces:
        raise OcciError(f"{path}: not a SentencePiece model (no pieces)")
    if proto.trainer_spec.model_type != BPE:
        raise OcciError(f"{path}: a SentencePiece {proto.trainer_spec.ModelType.Name(proto.trainer_spec.model_type)} "
                        "model; tokenizer extend supports BPE models (keep it with `tokenizer: base`)")
    return proto


def check_extendable(model_file: Path, tokenizer_file: Path) -> None:
    """Refuses a base whose tokenizer.json holds ids beyond tokenizer.model's pieces (added chat
    tokens, say): new pieces would get ids the model file cannot give them."""
    pieces = len(read_model(model_file).pieces)
    data = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    ids = [*data["model"]["vocab"].values(), *(t["id"] for t in data.get("added_tokens", []))]
    if max(ids) + 1 != pieces:
        raise OcciError(f"{tokenizer_file}: uses ids up to {max(ids)} but {model_file.name} has {pieces} pieces; "
                        "tokenizer extend needs both to hold the same ids")


def extend_model(model_file: Path, tokenizer_file: Path, added: list[dict], base_merges: list) -> None:
    """Appends the `added` pieces ({piece, id}, ids following the model's last) to `model_file`
    and writes `tokenizer_file`'s merges: `base_merges` (the base tokenizer.json's) with the new
    ones ranked as transformers' converter would; both files in place."""
    proto = read_model(model_file)
    if [p["id"] for p in added] != list(range(len(proto.pieces), len(proto.pieces) + len(added))):
        raise OcciError(f"{model_file}: new pieces must follow its {len(proto.pieces)} pieces")
    score = min(p.score for p in proto.pieces)
    for entry in added:
        score = _below(score)
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = entry["piece"], score, NORMAL
    data = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    data["model"]["merges"] = ranked_merges(proto, base_merges, len(proto.pieces) - len(added))
    model_file.write_bytes(proto.SerializeToString())
    tokenizer_file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _below(score: float) -> float:
    """A score lower than `score` as the model file stores it (float32): 1 lower, or the next
    float32 down where 1 is lost in rounding (Mistral gives its runs of spaces -1e9)."""
    lower = np.float32(score - 1.0)
    return float(lower if lower < np.float32(score) else np.nextafter(np.float32(score), np.float32(-np.inf)))


def ranked_merges(proto, base_merges: list, first_new: int) -> list:
    """`base_merges` (the base's, in their order) with the merges that the pieces from id
    `first_new` on make possible, each where the converter ranks it; same form as the base's."""
    as_strings = bool(base_merges) and isinstance(base_merges[0], str)
    normal = {p.piece: index for index, p in enumerate(proto.pieces) if p.type == NORMAL}
    base = [tuple(m.split(" ", 1)) if as_strings else tuple(m) for m in base_merges]
    known = set(base)
    after: dict[str, list[tuple[str, str]]] = {}  # an existing piece -> its new merges
    tail: list[tuple[str, str]] = []  # merges making new pieces, in id order
    for piece, index in sorted(normal.items(), key=lambda item: item[1]):
        new_piece = index >= first_new
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left not in normal or right not in normal or (left, right) in known:
                continue
            if new_piece:
                tail.append((left, right))
            elif normal[left] >= first_new or normal[right] >= first_new:
                after.setdefault(piece, []).append((left, right))
    merged: list[tuple[str, str]] = []
    last_of = {left + right: position for position, (left, right) in enumerate(base)}
    inserts: dict[int, list[tuple[str, str]]] = {}
    for piece, merges in after.items():
        # beside the piece's own merges; one the base could not make at all goes after the base's
        inserts.setdefault(last_of.get(piece, len(base) - 1), []).extend(merges)
    merged.extend(inserts.get(-1, []))
    for position, merge in enumerate(base):
        merged.append(merge)
        merged.extend(inserts.get(position, []))
    merged.extend(tail)
    return [f"{left} {right}" for left, right in merged] if as_strings else [list(m) for m in merged]

