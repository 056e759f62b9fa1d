"""The vision setting's parts: image sources (images.py), frozen backbones (backbones.py, with
the EfficientNet-Lite and ViT / DINOv2 families) and the stage graph (builder.py)."""
