from setuptools import find_packages, setup

setup(
    name="w2s_jax",
    version="0.1.0",
    description="Weak-to-strong generalization experiments in JAX/Flax NNX, from a CPU to TPU pods",
    packages=find_packages(include=["w2s_jax", "w2s_jax.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.10",
        "flax>=0.12",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "ml-collections>=1.0",
        "absl-py>=2.0",
        "numpy>=1.26",
        "tokenizers>=0.20",
        "datasets>=3.0",
        "safetensors>=0.4",
        "gguf>=0.10",
        "huggingface_hub>=0.20",
        "chess>=1.11",  # python-chess: rules, FEN/SAN/UCI/PGN, the stockfish driver
        "zstandard>=0.22",  # .zst Lichess puzzle CSVs and PGN dumps
        "matplotlib>=3.8",  # the report's figures (Agg backend, PNG)
        "jinja2>=3.1",  # chat templates (task.chat_template)
    ],
    extras_require={
        # torch 2.13.0 is the CPU build these machines carry; transformers is the parity reference.
        # efficientnet-lite-pytorch: the reference of the EfficientNet-Lite backbone's parity test.
        "test": ["pytest>=8", "torch==2.13.0", "transformers>=5,<6",
                 "efficientnet-lite-pytorch==0.1.0",
                 "tensorflow-datasets>=4.9.10", "array-record>=0.5", "tensorboardX>=2.6"],
        # TensorBoard event files of every stage (config `tensorboard`); W&B runs when
        # WANDB_PROJECT is set and wandb is installed.
        "tensorboard": ["tensorboardX>=2.6"],
        # Hub tokenizers without a tokenizer.json (AutoTokenizer) and their chat templates.
        "hf": ["transformers>=5,<6", "sentencepiece>=0.2", "protobuf"],
        # TFDS datasets read through ArrayRecord, without TensorFlow (task "tfds").
        "tfds": ["tensorflow-datasets>=4.9.10", "array-record>=0.5"],
        "tpu": ["jax[tpu]>=0.10"],
    },
    entry_points={"console_scripts": ["w2s-jax=w2s_jax.main:run"]},
)
