"""The ``onnx`` backend: the model's transformer exported once to ONNX, int8-quantised, run by onnxruntime.

Exporting loads the sentence-transformers model on torch, traces its transformer with
``torch.onnx.export`` and quantises the weights to int8 for this CPU (onnxruntime's dynamic
quantisation): a few seconds, once, into the cache folder. Encoding is then a tokenizer, one
onnxruntime session and the model's own pooling in numpy: no torch at run time.

(sentence-transformers' own ONNX backend goes through optimum, whose exporters pin an older
``transformers`` than sentence-transformers 6 needs; the plain exporter has no such pin.)
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence, cast

import numpy as np

from ..errors import ConfigError
from .artifacts import artifact, stay_offline

MAX_TOKENS = 128
"""Word pieces read per text. all-MiniLM-L6-v2 was trained on inputs of 128 word pieces (its model
card); reading 256 as sentence-transformers does costs twice the time for nothing on the dev files
(benchmarks/README.md, speed.py section)."""

EXPORT_VERSION = "v2"
"""The export's format, part of its cache folder's name: v2 has no attention-mask input (v1 had one)."""

SLOW_FUSIONS = ["SkipLayerNormFusion"]
"""onnxruntime fusions left out: its fused SkipLayerNormalization kernel took 382 µs a call on
128 tokens where the Add and LayerNormalization it replaces take 75 µs (onnxruntime 1.32, one
thread): a run is 15% faster without it (benchmarks/README.md, speed.py section)."""

POOLINGS = ("mean", "cls")
"""The sentence-transformers pooling modes this backend reproduces."""

SAME_AS_TORCH = 0.9
"""Least cosine between the exported int8 model's vectors and torch's on a few sentences, checked once
after exporting (int8 typically gives 0.96 and more): below it the export is refused, not used."""

_CHECK_SENTENCES = ("The cat sat on the mat.", "Interest rates rose sharply after the meeting.",
                    "def add(a, b):\n    return a + b", "Boil the egg for six minutes for a runny yolk.")


def _pooling(model: Path) -> str:
    config = model / "1_Pooling" / "config.json"
    if not config.is_file():
        return "mean"  # what sentence-transformers uses for a plain transformer without a pooling module
    modes = json.loads(config.read_text())
    found = [mode for mode in POOLINGS if modes.get(f"pooling_mode_{mode}_token" + ("s" if mode == "mean" else ""))]
    if len(found) != 1 or sum(bool(v) for k, v in modes.items() if k.startswith("pooling_mode_")) != 1:
        raise ConfigError(f"the onnx backend reproduces mean or CLS pooling only; {config} asks for {modes}: "
                          f"use --embedding-backend torch for this model")
    return found[0]


def _export(model: Path, folder: Path) -> None:
    stay_offline()
    try:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ConfigError(f"exporting the onnx backend needs torch, sentence-transformers, onnx and onnxruntime "
                          f"({exc}): run `rerank prepare --embedding-backend onnx` where they are installed and "
                          f"copy the cache folder") from exc
    pooling = _pooling(model)
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # transformers leaves it unannotated
    try:
        encoder = SentenceTransformer(str(model), device="cpu")
    except Exception as exc:  # noqa: BLE001 - any failure to load is the user's model directory, said once
        raise ConfigError(f"could not load embedding model {str(model)!r} offline to export it: {exc}") from exc
    encoder.eval()
    transformer, tokenizer = cast("torch.nn.Module", encoder[0].auto_model), encoder.tokenizer
    # no attention_mask: a text always runs alone and unpadded, so every token is attended to, and a
    # graph without the mask leaves out the masking operations (about a tenth of a run)
    inputs = [name for name in ("input_ids", "token_type_ids") if name in tokenizer.model_input_names]

    class LastHiddenState(torch.nn.Module):  # the transformer as a submodule: its weights export as weights
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors: Any) -> Any:
            return self.transformer(**dict(zip(inputs, tensors))).last_hidden_state

    sample = tokenizer(list(_CHECK_SENTENCES[:1]), return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in [*inputs, "last_hidden_state"]}
    full = folder / "model-fp32.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes: the export is checked below
        torch.onnx.export(LastHiddenState().eval(), tuple(sample[name] for name in inputs), str(full), input_names=inputs,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint on the root logger
    try:
        quantize_dynamic(str(full), str(folder / "model.onnx"), weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().setLevel(quiet)
    full.unlink()
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    dimension = int((getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension)() or 0)
    (folder / "rerank-onnx.json").write_text(json.dumps({"pooling": pooling, "inputs": inputs, "dimension": dimension}))
    expected = encoder.encode(list(_CHECK_SENTENCES), normalize_embeddings=True, convert_to_numpy=True)
    got = OnnxEncoder(model, folder=folder).encode(_CHECK_SENTENCES)
    similarity = float(np.min(np.sum(np.asarray(expected) * got, axis=1)))
    if similarity < SAME_AS_TORCH:
        raise ConfigError(f"the model exported to ONNX does not reproduce {model} (cosine {similarity:.3f} to "
                          f"torch's vectors, below {SAME_AS_TORCH}): use --embedding-backend torch for it")


def onnx_artifact(model: Path) -> Path:
    """The folder of ``model`` exported to int8 ONNX (exported now if missing)."""
    return artifact("onnx", model, lambda folder: _export(model, folder), what="exporting the model to ONNX (int8)",
                    version=EXPORT_VERSION)


def _workers() -> int:
    """Texts run at once: ``$OMP_NUM_THREADS`` when set (Ray sets it to an actor's CPUs), else every CPU."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    return int(threads) if threads.isdigit() and int(threads) > 0 else max(os.cpu_count() or 1, 1)


class OnnxEncoder:
    """Unit vectors from the int8 ONNX export of a sentence-transformers model, run by onnxruntime.

    Each text is cut at ``max_tokens`` word pieces and run through the model alone: int8 dynamic
    quantisation scales each run's activations by their range, so a batch would make a text's
    vector depend on the texts beside it (and padding costs time a CPU does not win back).
    Texts run side by side, one onnxruntime thread each, on as many threads as :func:`_workers`
    says: a short text keeps one core busy better than it keeps two (1.45x the pools per second
    of one text at a time on two threads, 2 cores).
    """

    def __init__(self, model: Path, *, max_tokens: int = MAX_TOKENS, folder: Path | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        folder = folder or onnx_artifact(model)
        try:
            config = json.loads((folder / "rerank-onnx.json").read_text())
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(str(folder / "model.onnx"), options,
                                                         providers=["CPUExecutionProvider"],
                                                         disabled_optimizers=SLOW_FUSIONS)
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:
            raise ConfigError(f"the ONNX model in {folder} cannot be read ({exc}): delete that folder and run "
                              f"`rerank prepare --embedding-backend onnx`") from exc
        self._pooling: str = config["pooling"]
        self._inputs: list[str] = config["inputs"]
        self.dimension = int(config["dimension"])
        self.max_tokens = max_tokens
        self._tokenizer.enable_truncation(max_tokens)
        self._tokenizer.no_padding()
        workers = _workers()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="rerank-onnx") if workers > 1 else None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dimension)`` array of unit vectors, in the order of ``texts``."""
        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        longest_first = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        runs = map if self._pool is None or len(texts) < 2 else self._pool.map
        for i, vector in zip(longest_first, runs(lambda i: self._vector(encodings[i]), longest_first)):
            out[i] = vector
        return out

    def _vector(self, encoding: Any) -> np.ndarray:
        arrays = {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask,  # v1 exports read a mask
                  "token_type_ids": encoding.type_ids}
        feed = {name: np.array([arrays[name]], dtype=np.int64) for name in self._inputs}
        hidden = self._session.run(None, feed)[0][0]
        vector = hidden[0] if self._pooling == "cls" else hidden.mean(axis=0)
        norm = float(np.linalg.norm(vector))
        return np.asarray(vector / norm if norm > 0 else vector, dtype=np.float32)
