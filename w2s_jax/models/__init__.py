"""Models: the size table and the NNX transformer."""
from w2s_jax.models.sizes import SIZES, ModelConfig, model_config, param_count
from w2s_jax.models.transformer import Transformer
