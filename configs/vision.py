"""Weak-to-strong on images: every role a linear probe on a frozen backbone's features (the
paper's appendix; what a run does: docs/vision.md).

  --config=configs/vision.py:tiny     600 MNIST digits, pixels -> EfficientNet-Lite0 block 6 at
                                      32 px, 2 seeds: about a minute on a CPU (CI)
  --config=configs/vision.py:default  5,000 MNIST digits (1,000 test, 500 dev), a probe on
                                      pixels supervises one on EfficientNet-Lite0 (ImageNet)
                                      block 12 at 112 px; xent and logconf, 5 replicate seeds
  --config=configs/vision.py:folder   your own images, one sub-folder per class
                                      (--config.vision.source=folder:PATH)
  --config=configs/vision.py:pod      the paper's recipe: ImageNet validation images from the
                                      Hub, EfficientNet-Lite0 -> DINOv2-base features, 3 seeds
                                      (a pod with the Hub; the images need the dataset's terms)
"""
from w2s_jax.config import defaults

VARIANTS = ("tiny", "default", "folder", "pod")


def get_config(arg: str = "default"):
  c = defaults()
  c.experiment = "vision"
  c.losses = ("xent", "logconf")
  c.train.batch_size = 64
  v = c.vision
  if arg == "tiny":
    v.update(n_test=200, n_train=400, strong="efficientnet-lite0@6", image_size=32, epochs=10.0)
    c.seeds, c.losses, c.bootstrap_samples = (0, 1), ("xent",), 200
  elif arg == "default":
    # Chosen on the dev slice (docs/vision.md): block 12 at 112 px, 20 epochs at lr 3e-3.
    v.update(n_test=1000, n_dev=500)
    c.seeds = (0, 1, 2, 3, 4)
  elif arg == "folder":
    v.update(source="folder:images", load_size=64, n_test=200, image_size=112)
  elif arg == "pod":
    v.update(source="hf:ILSVRC/imagenet-1k@validation", load_size=256, n_test=10_000,
             n_dev=5_000, weak="efficientnet-lite0", strong="hf:facebook/dinov2-base",
             image_size=224, batch_size=256, epochs=10.0)
    c.seeds, c.train.batch_size = (0, 1, 2), 256
  else:
    raise ValueError(f"unknown variant {arg!r} of configs/vision.py ({' | '.join(VARIANTS)})")
  return c
