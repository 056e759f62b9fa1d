"""Chess puzzles: data (puzzles.py), encodings (encoding.py), pretraining corpus (corpus.py),
decoding (decode.py) and the bootstrapping ladder (ladder.py)."""
