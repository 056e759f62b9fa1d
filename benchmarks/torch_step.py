"""The same train step in PyTorch + transformers (the reference W2SG code's stack): prints a table.

  python benchmarks/torch_step.py --sizes gpt2,gpt2-medium --batch 16 --length 512 \
      --dtype bfloat16 [--compile] [--steps 20]

Run it beside benchmarks/step_throughput.py on the same device and compare the ratio: the model
is built from the same w2s_jax size (hf_config -> transformers AutoModel, SDPA attention), a
linear head reads the last token, soft-label cross-entropy, AdamW with fp32 weights; bfloat16
means torch.autocast, as w2s_jax keeps fp32 parameters and computes in bf16. Model TFLOP/s counts
the same FLOPs (w2s_jax.dry_run.model_flops).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import transformers  # noqa: E402

from w2s_jax.models import hf as hf_lib, model_config  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import HEADER, throughput_row, time_calls  # noqa: E402


class Classifier(torch.nn.Module):
  def __init__(self, mc):
    super().__init__()
    cfg = transformers.AutoConfig.for_model(**hf_lib.hf_config(mc))
    self.body = transformers.AutoModel.from_config(cfg, attn_implementation="sdpa")
    self.head = torch.nn.Linear(mc.d_model, 2)

  def forward(self, tokens):
    return self.head(self.body(input_ids=tokens).last_hidden_state[:, -1])


def measure(size, batch, length, dtype, steps, compile_, device):
  mc = model_config(size, 259)
  model = Classifier(mc).to(device)
  opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device == "cuda")
  step_model = torch.compile(model) if compile_ else model
  tokens = torch.randint(0, mc.vocab_size, (batch, length), device=device)
  targets = torch.tensor([[0.3, 0.7]], device=device).expand(batch, 2)

  def step():
    with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
      logits = step_model(tokens)
    loss = torch.nn.functional.cross_entropy(logits.float(), targets)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

  first, dt = time_calls(step, lambda loss: loss.item(), steps)  # item() waits for the device
  return mc, first, dt


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--sizes", default="tiny-3,tiny-4")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--length", type=int, default=128)
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.add_argument("--compile", action="store_true", help="torch.compile the model")
  p.add_argument("--steps", type=int, default=20)
  a = p.parse_args()
  device = "cuda" if torch.cuda.is_available() else "cpu"
  name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
  print(f"torch {torch.__version__} on {name}; batch {a.batch} x {a.length}, {a.dtype}, "
        f"{'compiled' if a.compile else 'eager'}")
  print(HEADER)
  for size in a.sizes.split(","):
    mc, first, dt = measure(size, a.batch, a.length, a.dtype, a.steps, a.compile, device)
    print(throughput_row(size, mc, a.batch, a.length, "none", first, dt), flush=True)


if __name__ == "__main__":
  main()
