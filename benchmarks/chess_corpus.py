"""Self-play corpus speed of each player, and determinism for a seed (a table).

  python benchmarks/chess_corpus.py [--positions=3000]
"""
import argparse
import time

from w2s_jax.chess import corpus


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--positions", type=int, default=3000)
  a = ap.parse_args()
  print(f"{'player':>10} {'depth':>5} {'positions/s':>11} {'games':>6} {'deterministic':>13}")
  for player, depth in (("greedy", 0), ("stockfish", 1), ("stockfish", 3), ("stockfish", 5)):
    t = time.time()
    fens, moves, stats = corpus.self_play(a.positions, player=player, depth=depth, seed=0)
    dt = time.time() - t
    again = corpus.self_play(300, player=player, depth=depth, seed=0)
    same = again[0] == fens[:300] and again[1] == moves[:300]
    print(f"{player:>10} {depth:>5} {len(fens) / dt:>11.0f} {stats['games']:>6} {str(same):>13}",
          flush=True)


if __name__ == "__main__":
  main()
