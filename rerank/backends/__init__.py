"""Embedding backends by name: each turns texts into a sentence-transformers model's vectors its own way.

- ``torch`` (:mod:`.transformer`): sentence-transformers on torch, the model as it ships;
- ``onnx`` (:mod:`.onnx`): the transformer exported once to int8 ONNX, run by onnxruntime
  (no torch at run time), reading the first 128 word pieces of a text;
- ``static`` (:mod:`.static`): static token vectors distilled once from the model (model2vec),
  read with numpy and a tokenizer at run time.

A backend that needs an artifact derived from the model builds it once into the cache folder
(:mod:`.artifacts`); :func:`prepare` does that ahead of time (``rerank prepare``).
"""

from __future__ import annotations

from pathlib import Path

from ..embeddings import Encoder, check_backend
from ..errors import ConfigError


def check_model_dir(model: Path) -> None:
    """A ConfigError unless ``model`` looks like a local sentence-transformers (or transformers)
    model directory: checked before any backend reads it, fingerprints it or exports it."""
    if not (model / "modules.json").is_file() and not (model / "config.json").is_file():
        raise ConfigError(f"could not load embedding model {str(model)!r} offline: it is not a model directory "
                          f"(no modules.json or config.json in it). Give a local sentence-transformers model "
                          f"directory, or omit the option to use the bundled one.")


def load_encoder(name: str, model: Path, *, device: str = "cpu", batch_size: int = 32) -> Encoder:
    """The encoder of backend ``name`` for the sentence-transformers model directory ``model``."""
    backend = check_backend(name)
    check_model_dir(model)
    if backend == "static":
        from .static import StaticEncoder

        return StaticEncoder(model)
    if backend == "onnx":
        from .onnx import OnnxEncoder

        return OnnxEncoder(model)
    from .transformer import TransformerEncoder

    return TransformerEncoder(model, device=device, batch_size=batch_size)


def prepare(name: str, model: Path) -> Path | None:
    """Build backend ``name``'s artifact for ``model`` now if it is missing; its folder, or None
    for a backend that reads the model as it is (``torch``)."""
    backend = check_backend(name)
    check_model_dir(model)
    if backend == "static":
        from .static import static_artifact

        return static_artifact(model)
    if backend == "onnx":
        from .onnx import onnx_artifact

        return onnx_artifact(model)
    return None
