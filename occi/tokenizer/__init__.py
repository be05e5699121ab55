"""Stage 2: one shared SentencePiece tokenizer for all run languages, and its report."""
