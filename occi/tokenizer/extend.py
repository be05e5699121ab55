"""`tokenizer: {extend: RECIPE, add: N}`: the base model's tokenizer plus up to N pieces learned on
the run's corpora; every existing id keeps its piece.

1. occi's tokenizer stage trains a SentencePiece model with RECIPE on the run's sampled corpora
   (occi/tokenizer/train.py); its pieces, most useful first (SentencePiece's score: BPE merge
   order), are the candidates.
2. A candidate is written as the base spells text ("▁" becomes a space, then the base's own
   normaliser and pre-tokeniser: "Ġ" for byte-level BPE) and kept when it is one pre-tokenised
   word the base does not have. The base's BPE splits it into parts; new merges appended after
   all of the base's join the parts left to right, each join a new piece (the last one is the
   candidate), as long as the total stays within N. New ids follow the base's highest id.
3. extension.json records each new piece, its id and the base ids of its parts: `occi import`
   initialises the piece's embedding (and output) row as the mean of those parts' rows.
4. A SentencePiece base (tokenizer.model beside its tokenizer.json: Mistral, Llama 2) gets the
   same pieces in its tokenizer.model too, with scores and merges that keep both files one
   tokenizer (occi/tokenizer/sentencepiece_extend.py).

Only BPE tokenizer.json bases (Llama 3, Qwen, Tekken, and the tokenizer.json of SentencePiece BPE
bases) are extended; the report compares base and extended tokenizer per language.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from tokenizers import Tokenizer

from occi.basemodel import TOKENIZER_FILES, resolve
from occi.config import RunConfig
from occi.errors import OcciError
from occi.fsutil import atomic_dir, atomic_write_json, mark_done
from occi.tokenizer import models
from occi.tokenizer import report as tokenizer_report
from occi.tokenizer.sampling import corpus_lines, sample_lines, write_training_text
from occi.tokenizer.sentencepiece_extend import check_extendable, extend_model
from occi.rundir import RunDir
from occi.tokenizer.spm_train import train_sentencepiece


def extend(cfg: RunConfig, run_dir: Path) -> dict:
    """Writes the extended tokenizer into <run>/tokenizer/ with its report; returns the report."""
    folder = resolve(cfg.model)
    if not (folder / "tokenizer.json").is_file():
        raise OcciError(f"{folder}: tokenizer extend needs the base's tokenizer.json (a BPE model)")
    base_json = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    if (base_json.get("model") or {}).get("type") != "BPE":
        raise OcciError(f"{folder / 'tokenizer.json'}: a {base_json.get('model', {}).get('type')} model; "
                        "tokenizer extend supports BPE tokenizers")
    sentencepiece = (folder / "tokenizer.model").is_file()
    if sentencepiece:
        check_extendable(folder / "tokenizer.model", folder / "tokenizer.json")
    out = RunDir.of(run_dir).tokenizer
    recipe = cfg.tokenizer
    with atomic_dir(out) as tmp:
        chosen, shares = sample_lines(corpus_lines(cfg, run_dir, "train"), recipe.alpha, recipe.char_budget, cfg.seed)
        text_file = tmp / ".training-text.txt"
        line_count = write_training_text(chosen, text_file, cfg.seed)
        learned = tmp / ".learned"
        learned.mkdir()
        train_sentencepiece(cfg, text_file, learned / "tokenizer", line_count)
        text_file.unlink()
        for name in TOKENIZER_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, tmp / name)
        added = add_pieces(tmp / "tokenizer.json", candidates(learned / "tokenizer.model"), recipe.add)
        shutil.rmtree(learned)
        if sentencepiece:
            extend_model(tmp / "tokenizer.model", tmp / "tokenizer.json", added, base_json["model"]["merges"])
        atomic_write_json(tmp / "extension.json", {"base": cfg.model.base, "requested": recipe.add,
                                                   "added": len(added), "pieces": added})
        atomic_write_json(tmp / "sampling.json", {"alpha": recipe.alpha, "char_budget": recipe.char_budget,
                                                   "languages": shares})
        heldout = {code: "\n".join(lines) for code, lines in corpus_lines(cfg, run_dir, "heldout").items() if lines}
        base = models.HFTokenizer(folder / "tokenizer.json", "base")
        extended = models.HFTokenizer(tmp / "tokenizer.json", f"extended (+{len(added)})")
        result = tokenizer_report.compare(tokenizer_report.evaluate([extended, base], heldout, parallel=False),
                                          extended.name, base.name)
        tokenizer_report.write(result, tmp)
        mark_done(tmp)
    return result


def candidates(model_file: Path) -> list[str]:
    """The learned pieces as text, most useful first (specials, bytes and single characters left out)."""
    import sentencepiece as spm  # loads sentencepiece: only when used

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    pieces = [(sp.get_score(i), i, sp.id_to_piece(i)) for i in range(sp.get_piece_size())
              if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i) or sp.is_unused(i))]
    pieces.sort(key=lambda item: (-item[0], item[1]))
    return [piece.replace("▁", " ") for _, _, piece in pieces if len(piece.replace("▁", "")) > 1]


def add_pieces(tokenizer_file: Path, texts: list[str], limit: int) -> list[dict]:
    """Adds pieces for `texts` (in order) to a BPE tokenizer.json, at most `limit` new pieces in all;
    returns [{piece, id, text, parts: base ids}] for every new piece."""
    base = Tokenizer.from_file(str(tokenizer_file))
    data = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    vocab: dict[str, int] = data["model"]["vocab"]
    merges = data["model"]["merges"]
    pairs_as_strings = bool(merges) and isinstance(merges[0], str)
    known = {tuple(m.split(" ", 1)) if pairs_as_strings else tuple(m) for m in merges}
    next_id = max([*vocab.values(), *(t["id"] for t in data.get("added_tokens", []))]) + 1
    added: list[dict] = []
    for text in texts:
        if len(added) >= limit:
            break
        normalized = base.normalizer.normalize_str(text) if base.normalizer else text
        words = base.pre_tokenizer.pre_tokenize_str(normalized) if base.pre_tokenizer else [(normalized, None)]
        if len(words) != 1:
            continue
        piece = words[0][0]
        if piece in vocab:
            continue
        parts = [base.id_to_token(i) for i in base.encode(text, add_special_tokens=False).ids]
        if len(parts) < 2 or "".join(parts) != piece or len(added) + len(parts) - 1 > limit:
            continue
        current = parts[0]
        for end, part in enumerate(parts[1:], 2):
            joined = current + part
            if joined not in vocab:
                vocab[joined] = next_id
                added.append({"piece": joined, "id": next_id, "text": text if joined == piece else None,
                              "parts": [base.token_to_id(p) for p in parts[:end]]})
                next_id += 1
            if (current, part) not in known:  # a second copy would move the merge to the end
                known.add((current, part))
                merges.append(f"{current} {part}" if pairs_as_strings else [current, part])
            current = joined
    tokenizer_file.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return added
