"""The models and the gallery a conversation works with, built once and shared by every turn.

Tools never load anything themselves: the graph is built around one :class:`Resources`
(embedder, index, the gallery's pooled vectors, a way to get any gallery image, the gallery's
texts where it has them, the question bank, and lazily the generator and the LLM). It is the
gallery layer: it knows no world, only what a user's own folder gives (``from_index``); a
testbed gallery is built the same way by the testbed plugin. Patch features of gallery images (for OT
rerank) are computed on demand from the images and cached, so a gallery of any size costs
nothing until a candidate is reranked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import TYPE_CHECKING

import numpy as np

from convir.errors import InputError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from convir.gallery.questions import QuestionBank
    from convir.gallery.text_reader import GalleryTexts, PoolTexts
    from convir.index.faiss_index import GalleryIndex
    from convir.models.embedder import Embedder, TextFeatures
    from convir.models.generator import Generator
    from convir.models.llm import LLM
    from convir.models.text_model import TextModel

PATCH_CACHE_SIZE = 4096  # images whose patch features stay in memory (~2 MB each per 1k)
TEXT_CACHE_SIZE = 256  # texts whose pooled + token features stay in memory (~10 kB each)


@dataclass
class Resources:
    """Everything a turn needs, passed in explicitly (no hidden globals)."""

    embedder: Embedder
    index: GalleryIndex
    vectors: np.ndarray  # [N, D] unit pooled image embeddings, in index position order
    load_image: Callable[[int], Image.Image]  # index position -> the image
    captions: list[str | None] | None = None  # a text per position, where the gallery has one
    generator_factory: Callable[[], Generator] | None = None
    llm: LLM | None = None
    question_bank: QuestionBank | None = None  # None: caption-mined, or vocabulary without texts
    # the caption channel of an image gallery (``convir index --text-model``): one vector per
    # item by a sentence model (a zero row: no caption), and that model, loaded on first use
    caption_vectors: np.ndarray | None = None
    text_model_factory: Callable[[], TextModel] | None = None
    _text_model: TextModel | None = field(default=None, repr=False)
    _caption_queries: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict, repr=False)
    _generator: Generator | None = field(default=None, repr=False)
    _patches: OrderedDict[int, torch.Tensor] = field(default_factory=OrderedDict, repr=False)
    _views: OrderedDict[tuple, np.ndarray] = field(default_factory=OrderedDict, repr=False)
    _texts: OrderedDict[str, TextFeatures] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _gallery_texts: GalleryTexts | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.vectors.shape != (self.index.count, self.index.dim):
            raise InputError(
                f"gallery vectors {list(self.vectors.shape)} do not match the index "
                f"({self.index.count} x {self.index.dim})"
            )
        # scanned once here, not on every question turn (galleries reach millions of items)
        self._has_texts = self.captions is not None and any(self.captions)

    @property
    def generator(self) -> Generator | None:
        """The image generator, loaded on first use (DAR only needs it when it generates)."""
        with self._lock:
            if self._generator is None and self.generator_factory is not None:
                self._generator = self.generator_factory()
            return self._generator

    @property
    def has_caption_channel(self) -> bool:
        """Whether the gallery has caption vectors and a text model to query them."""
        return self.caption_vectors is not None and self.text_model_factory is not None

    def caption_cosines(self, query: str, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Cosine of the query's text-model vector to these positions' caption vectors
        (0 where an item has no caption); the query's vector is cached like :meth:`text`'s."""
        if not self.has_caption_channel:
            raise InputError(
                "this gallery has no caption vectors: rebuild it with `convir index FOLDER "
                "--captions FILE --text-model all-MiniLM-L6-v2`, or set caption_weight 0"
            )
        with self._lock:
            if self._text_model is None:
                self._text_model = self.text_model_factory()
            q = self._caption_queries.get(query)
        if q is None:
            q = self._text_model.encode([query])[0]
            with self._lock:
                self._caption_queries[query] = q
                while len(self._caption_queries) > TEXT_CACHE_SIZE:
                    self._caption_queries.popitem(last=False)
        if q.shape[0] != self.caption_vectors.shape[1]:
            from convir.errors import IndexFileError

            raise IndexFileError(
                f"the caption vectors are {self.caption_vectors.shape[1]}-d but the text model "
                f"{self._text_model.name} embeds into {q.shape[0]}-d; use the text model the "
                "index was built with"
            )
        rows = self.caption_vectors[np.asarray(positions, dtype=np.int64)]
        return rows.astype(np.float32) @ q

    def positions(self, ids: Sequence[str]) -> list[int]:
        return [self.index.position_of(i) for i in ids]

    def text(self, text: str) -> TextFeatures:
        """Pooled and token features of one text ([1, D], [1, T, D], [1, T]), kept for reuse.

        A STiTch turn needs the query's pooled vector in ``retrieve`` and its tokens in
        ``ot_rerank``, and the reference caption every turn: one forward pass each, not three.
        """
        with self._lock:
            hit = self._texts.get(text)
            if hit is not None:
                self._texts.move_to_end(text)
                return hit
        feats = self.embedder.encode_text([text], tokens=True)
        with self._lock:
            self._texts[text] = feats
            while len(self._texts) > TEXT_CACHE_SIZE:
                self._texts.popitem(last=False)
        return feats

    def warm_texts(self, texts: Sequence[str]) -> None:
        """Encode the texts not cached yet in one forward pass, into :meth:`text`'s cache
        (a batch of conversations' queries; the cache grows to hold the whole batch)."""
        wanted = list(dict.fromkeys(texts))
        with self._lock:
            missing = [t for t in wanted if t not in self._texts]
            for t in wanted:  # the batch's cached texts are the newest: none is evicted below
                if t in self._texts:
                    self._texts.move_to_end(t)
        if len(missing) > 1:
            feats = self.embedder.encode_text(missing, tokens=True)
            with self._lock:
                for i, t in enumerate(missing):
                    self._texts[t] = type(feats)(
                        *(None if f is None else f[i : i + 1] for f in feats)
                    )
                while len(self._texts) > max(TEXT_CACHE_SIZE, len(wanted)):
                    self._texts.popitem(last=False)

    def pooled_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled embeddings [len, D] of several texts: one forward pass for those not
        cached yet (a STiTch turn's descriptions), the rest from :meth:`text`'s cache."""
        self.warm_texts(texts)
        return np.concatenate([self.text(t).pooled.numpy() for t in texts]).astype(np.float32)

    def patches(self, positions: Sequence[int]) -> torch.Tensor:
        """Patch features [len, P, D] of gallery images, computed once per image."""
        import torch

        with self._lock:
            missing = [p for p in dict.fromkeys(positions) if p not in self._patches]
        if missing:
            feats = self.embedder.encode_images(
                [self.load_image(p) for p in missing], patches=True
            ).patches
            with self._lock:
                for p, f in zip(missing, feats, strict=True):
                    self._patches[p] = f.to(torch.float16)
                while len(self._patches) > max(PATCH_CACHE_SIZE, len(positions)):
                    self._patches.popitem(last=False)
        with self._lock:
            return torch.stack([self._patches[p] for p in positions]).float()

    def views(self, positions: Sequence[int], n: int, preset: str) -> np.ndarray:
        """View sets [len, 1 + views, D] of gallery images: the plain embedding first, then
        the index's stored views (``convir index --views``), else ``n`` views of the
        ``preset`` computed now from the images and cached (``convir.models.views``)."""
        plain = self.vectors[list(positions)][:, None, :]
        if self.index.view_count:
            return np.concatenate([plain, self.index.views_of(positions)], axis=1)
        from convir.models.views import embed_views

        keys = [(p, n, preset) for p in positions]
        with self._lock:
            missing = [k for k in dict.fromkeys(keys) if k not in self._views]
        if missing:
            images = [self.load_image(p) for p, _, _ in missing]
            ids = [self.index.id_of(p) for p, _, _ in missing]
            feats = embed_views(self.embedder, images, ids, n, preset)
            with self._lock:
                for k, f in zip(missing, feats, strict=True):
                    self._views[k] = f
                while len(self._views) > max(PATCH_CACHE_SIZE, len(keys)):
                    self._views.popitem(last=False)
        with self._lock:
            extra = np.stack([self._views[k] for k in keys])
        return np.concatenate([plain, extra], axis=1)

    @classmethod
    def from_index(
        cls,
        index: GalleryIndex,
        embedder: Embedder,
        *,
        captions: list[str | None] | None = None,
        generator_factory: Callable[[], Generator] | None = None,
        llm: LLM | None = None,
        question_bank: QuestionBank | None = None,
    ) -> Resources:
        """Any saved index: images are read from the paths it recorded; its texts (captions
        stored by ``convir index --captions/--captioner``) unless ``captions`` is given."""
        from pathlib import Path

        from convir.index.captions_only import is_captions_only
        from convir.index.folder import load_image

        root = Path(index.image_root) if index.image_root else None

        def image_at(position: int) -> Image.Image:
            path = Path(index.path_of(position))
            return load_image(root / path if root and not path.is_absolute() else path)

        if is_captions_only(index):
            image_at = _no_image
        channel = index.caption_vectors() if not is_captions_only(index) else None
        text_model_factory = None
        if channel is not None and index.text_model:
            import functools

            from convir.models.text_model import load_text_model

            text_model_factory = functools.partial(load_text_model, index.text_model)
        return cls(
            embedder=embedder,
            index=index,
            vectors=index.vectors(),
            load_image=image_at,
            captions=captions if captions is not None else index.captions,
            generator_factory=generator_factory,
            llm=llm,
            question_bank=question_bank,
            caption_vectors=channel if text_model_factory is not None else None,
            text_model_factory=text_model_factory,
        )

    @classmethod
    def open(
        cls,
        index_path: str | PathLike[str] | GalleryIndex,
        *,
        model: str | None = None,
        pretrained: str | None = None,
        text_model: str | None = None,
        generator: bool = False,
        llm: LLM | None = None,
    ) -> Resources:
        """A saved gallery with the models it was built with: the image model the index
        records (``model``/``pretrained`` override it, e.g. when the weights moved), or for a
        captions-only index its text model (``text_model`` overrides), with no images.
        ``generator``: DAR may generate images (the testbed CLIP's generator only); ``llm``:
        the LLM of the LLM policy, question bank and refiner. ``index_path`` may also be an
        index already loaded (a benchmark's search space cut out of a bigger one).
        :class:`IndexFileError` when the model does not embed into the index's dimension.
        The one way a gallery is opened: chat, serve, ``load_agent`` and the evaluations."""
        from convir.errors import IndexFileError, ModelError
        from convir.index.captions_only import is_captions_only
        from convir.index.faiss_index import GalleryIndex

        if isinstance(index_path, GalleryIndex):
            index, index_path = index_path, "the index"
        else:
            index = GalleryIndex.load(index_path)
        factory = None
        if is_captions_only(index):
            if model is not None or pretrained is not None:
                raise InputError(
                    f"{index_path} is a captions-only gallery (text model {index.text_model}): "
                    "it has no image model; drop --model/--pretrained"
                )
            from convir.models.text_model import TextEmbedder, load_text_model

            name = text_model or index.text_model
            embedder: Embedder = TextEmbedder(load_text_model(name))
        else:
            if text_model is not None and index.caption_vectors() is None:
                raise InputError(
                    f"--text-model applies to captions-only galleries and to indexes with "
                    f"caption vectors; {index_path} has neither (it is searched with its image "
                    "model)"
                )
            from convir.models.embedder import TESTBED_MODEL, load_embedder

            name = model or index.model
            if name is None:
                raise InputError(f"{index_path} records no model; pass --model and --pretrained")
            try:
                embedder = load_embedder(name, pretrained or index.pretrained)
            except ModelError as exc:
                if model is not None or pretrained is not None:
                    raise
                raise ModelError(
                    f"{exc} (the index was built with --model {index.model} --pretrained "
                    f"{index.pretrained}; rebuild the index if the weights moved)"
                ) from exc
            if generator and name == TESTBED_MODEL:  # the testbed generator speaks its CLIP only
                import functools

                from convir.models.generator import TestbedGenerator

                factory = functools.partial(TestbedGenerator, embedder=embedder)
        if embedder.dim != index.dim:
            raise IndexFileError(
                f"{index_path} holds {index.dim}-d vectors but {name} embeds into "
                f"{embedder.dim}-d; open it with the model it was built with"
            )
        resources = cls.from_index(index, embedder, generator_factory=factory, llm=llm)
        if text_model is not None and resources.caption_vectors is not None:
            import functools

            from convir.models.text_model import load_text_model

            resources.text_model_factory = functools.partial(load_text_model, text_model)
        return resources

    @property
    def has_images(self) -> bool:
        """False for a captions-only gallery: nothing to show, patch or view."""
        return self.load_image is not _no_image

    def bank(self) -> QuestionBank:
        """The question bank in use: the one given, else mined from the gallery's texts, else
        the embedder's concept vocabulary (a gallery without texts)."""
        from convir.gallery.questions import CaptionBank, VocabularyBank, concepts_of

        if self.question_bank is not None:
            return self.question_bank
        if self._has_texts:
            return CaptionBank()
        return VocabularyBank(concepts_of(self.embedder))

    def caption_for(self, item_id: str) -> str | None:
        """The text of one gallery item (e.g. a reference image's caption), if it has one."""
        if self.captions is None:
            return None
        return self.captions[self.index.position_of(item_id)]

    def texts_at(self, positions: Sequence[int] | np.ndarray) -> PoolTexts | None:
        """A reader of these positions' texts for the answer model (None without texts):
        through one index of the whole gallery, built on first use, up to
        ``GALLERY_INDEX_MAX`` texts; above that, an index of just these texts."""
        from convir.gallery.text_reader import GALLERY_INDEX_MAX, GalleryTexts, PoolTexts

        if self.captions is None:
            return None
        if len(self.captions) > GALLERY_INDEX_MAX:
            return PoolTexts.of([self.captions[int(p)] for p in positions])
        with self._lock:
            if self._gallery_texts is None:
                self._gallery_texts = GalleryTexts(self.captions)
        return self._gallery_texts.pool(positions)

    def captions_at(self, positions: Sequence[int]) -> list[str | None] | None:
        """The texts of these gallery positions, or None when the gallery has none."""
        if self.captions is None:
            return None
        return [self.captions[p] for p in positions]


def _no_image(position: int) -> Image.Image:
    """``load_image`` of a captions-only gallery."""
    raise InputError(
        f"no images: captions-only gallery (item at position {position} is text only); "
        "show its text instead, and search it with text (no reference images, no STiTch)"
    )
