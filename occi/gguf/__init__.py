"""GGUF export for llama.cpp and Ollama: the run's HF export (<run>/hf/) -> <run>/gguf/.

arch.py reads the model family's GGUF spec (occi/families/): GGUF's architecture, hyperparameters
and tensor names; vocab.py turns the tokenizer (SentencePiece, or byte-level BPE in tokenizer.json)
into GGUF's tokenizer keys;
quant.py names the quantization types and who can write each; writer.py writes one file;
modelfile.py writes Ollama's Modelfile; export.py is what `occi export --format gguf` runs.
"""
