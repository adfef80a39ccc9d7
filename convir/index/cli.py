"""``convir index`` and ``convir search``: embed a folder of images into one index file, and
query it with text using the model the index was built with.

Mistakes a user can fix (missing folder, no images, unknown model, missing weights, bad
factory, missing index) raise :class:`~convir.errors.ConvirError`, which ``convir.cli.main``
prints as one ``error: ...`` line with exit code 2. Heavy imports stay inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from convir.errors import InputError, ModelError
from convir.index.folder import DEFAULT_MAX_PIXELS, DEFAULT_WORKERS
from convir.ray_cluster import ADDRESS_HELP

if TYPE_CHECKING:
    from convir.index.faiss_index import GalleryIndex
    from convir.index.folder import FolderEmbedding
    from convir.models.captioner import Captioner
    from convir.models.text_model import TextModel


def _resolve_weights(model: str | None, pretrained: str | None) -> tuple[str, str]:
    """(model name, weights) to load; the shipped testbed CLIP when no model is named.

    A model other than the testbed one needs explicit weights: an index built from random
    weights would embed every image into noise, and search could never recreate them.
    """
    from convir.models.embedder import TESTBED_CHECKPOINT, TESTBED_MODEL

    if model is None or model == TESTBED_MODEL:
        if pretrained is None:
            if not TESTBED_CHECKPOINT.exists():
                raise ModelError(
                    f"the shipped testbed CLIP checkpoint {TESTBED_CHECKPOINT} is missing; "
                    "train it with `convir testbed train-clip`, or pass --model and --pretrained"
                )
            pretrained = str(TESTBED_CHECKPOINT)
        model = TESTBED_MODEL
    elif pretrained is None:
        import open_clip

        from convir.models.embedder import register_testbed_config

        register_testbed_config()
        if model not in open_clip.list_models():  # the more basic mistake, reported first
            raise ModelError(
                f"--model: open_clip does not know a model called {model!r}; see "
                f"open_clip.list_models() (e.g. ViT-B-32) or use {TESTBED_MODEL!r}"
            )
        raise InputError(
            f"--pretrained: give a checkpoint file or an open_clip pretrained tag for --model "
            f"{model} (without weights the model is random and the index useless)"
        )
    if Path(pretrained).is_file():  # record an absolute path so search works from anywhere
        pretrained = str(Path(pretrained).resolve())
    return model, pretrained


def index_command(
    folder: Path | None = typer.Argument(
        None, help="Folder of images, searched recursively (none with --captions-only)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Index file to write; replaced atomically if it exists."
    ),
    model: str | None = typer.Option(
        None, "--model", help="open_clip model name (default: the shipped testbed CLIP)."
    ),
    pretrained: str | None = typer.Option(
        None, "--pretrained", help="Checkpoint file or open_clip pretrained tag for --model."
    ),
    factory: str | None = typer.Option(
        None,
        "--factory",
        help="FAISS factory string: Flat, IVF1024,Flat, HNSW32, IVF1024,PQ32... "
        "(default: picked from the gallery size)",
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Images per model call."),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda, cuda:1..."),
    max_pixels: int = typer.Option(
        DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Skip images with more pixels than this."
    ),
    workers: int = typer.Option(
        DEFAULT_WORKERS,
        "--workers",
        min=1,
        help="At most this many threads decode images while the model runs; on a CPU model "
        "only cores torch leaves free get one (none: decode between batches).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    captions: Path | None = typer.Option(
        None,
        "--captions",
        help='JSON-lines file of {"path", "caption"}: one text per image, stored in the index '
        "(paths relative to FOLDER or absolute).",
    ),
    captioner: str | None = typer.Option(
        None,
        "--captioner",
        help="Caption every image with a model and store the texts: 'testbed', a local "
        "transformers image-to-text folder, or vlm:MODEL (an OpenAI-compatible server at "
        "CONVIR_LLM_URL).",
    ),
    views: int = typer.Option(
        0,
        "--views",
        min=0,
        max=32,
        help="Also embed N augmented views of every image (STiTch's set score; published: "
        "10). Costs N forward passes per image once; without them STiTch computes views of "
        "its top candidates at query time.",
    ),
    view_augment: str = typer.Option(
        "published",
        "--view-augment",
        help="Views: 'published' (random resized crop + flip, STiTch's code) or 'gentle' "
        "(crops of 80-100 percent, no flip: keeps positions; docs/stitch.md).",
    ),
    use_ray: bool = typer.Option(
        False, "--ray", help="Embed with Ray Data on a Ray cluster (extra: convir[ray])."
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help=ADDRESS_HELP,
    ),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        min=1,
        help="--ray: embedding actors, each with its own model (default: one per GPU, "
        "else one per CPU).",
    ),
    captions_only: Path | None = typer.Option(
        None,
        "--captions-only",
        help='A gallery of texts only: JSON-lines file of {"id", "captions": [...], "path"?}, '
        "embedded with --text-model (give no FOLDER).",
    ),
    text_model: str | None = typer.Option(
        None,
        "--text-model",
        help="sentence-transformers model (all-MiniLM-L6-v2, extra convir[text], or a model "
        "folder) that embeds the texts: of --captions-only, or with FOLDER and "
        "--captions/--captioner the images' captions (caption vectors; fused into retrieval "
        "by the agent's caption_weight).",
    ),
) -> None:
    """Embed every image under FOLDER and write a FAISS index file (unreadable files are
    skipped with a warning each). With --ray, Ray actors embed (one GPU each when the
    cluster has GPUs, --device is then ignored) and the result is the same index. With
    --captions-only FILE --text-model NAME, a gallery of texts only (no FOLDER)."""
    if captions_only is not None or (folder is None and text_model is not None):
        if folder is not None:
            raise InputError(
                "--captions-only indexes a captions file alone; drop the FOLDER argument "
                "(or drop --captions-only to index the folder's images)"
            )
        if captions_only is None:
            raise InputError("--text-model without FOLDER needs --captions-only FILE.jsonl")
        if text_model is None:
            raise InputError(
                "--captions-only needs --text-model NAME_OR_PATH, e.g. --text-model "
                "all-MiniLM-L6-v2 (extra convir[text])"
            )
        image_only = {
            "--model": model, "--pretrained": pretrained, "--captions": captions,
            "--captioner": captioner, "--views": views or None, "--ray": use_ray or None,
        }  # fmt: skip
        given = [flag for flag, value in image_only.items() if value is not None]
        if given:
            raise InputError(f"{', '.join(given)}: for image folders, not with --captions-only")
        build_captions_only(captions_only, text_model, out, factory=factory, progress=progress)
        return
    if folder is None:
        raise InputError("give a FOLDER of images, or --captions-only FILE.jsonl --text-model NAME")
    build_index(
        folder,
        out,
        model=model,
        pretrained=pretrained,
        factory=factory,
        batch_size=batch_size,
        device=device,
        max_pixels=max_pixels,
        workers=workers,
        progress=progress,
        captions=captions,
        captioner=captioner,
        views=views,
        view_augment=view_augment,
        use_ray=use_ray,
        ray_address=ray_address,
        concurrency=concurrency,
        text_model=text_model,
    )


def build_index(
    folder: Path,
    out: Path,
    *,
    model: str | None = None,
    pretrained: str | None = None,
    factory: str | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = DEFAULT_WORKERS,
    progress: bool = True,
    captions: Path | None = None,
    captioner: str | None = None,
    views: int = 0,
    view_augment: str = "published",
    use_ray: bool = False,
    ray_address: str | None = None,
    concurrency: int | None = None,
    text_model: str | None = None,
) -> Path:
    """What ``convir index`` does, as a plain function (``index_command`` parses options
    into it; other code calls it directly): embed, build, attach texts and views, save.
    With ``text_model``, the captions are also embedded by that sentence model (caption
    vectors, fused into retrieval by ``AgentConfig.caption_weight``).
    Prints the one summary line; returns ``out``."""
    from convir.index.faiss_index import GalleryIndex, default_factory
    from convir.index.folder import embed_images, list_images
    from convir.models.embedder import load_embedder

    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file path such as {out}/gallery.index")
    if not use_ray and (ray_address is not None or concurrency is not None):
        raise InputError("--ray-address and --concurrency apply with --ray only; add --ray")
    if captions is not None and captioner is not None:
        raise InputError("give --captions (a file) or --captioner (a model), not both")
    if captions is not None and not captions.is_file():
        raise InputError(f"--captions: no file at {captions}; give a JSON-lines file")
    if text_model is not None and captions is None and captioner is None:
        raise InputError(
            "--text-model embeds the images' captions: add --captions FILE or --captioner "
            "MODEL (or use --captions-only FILE for a gallery of texts alone)"
        )
    if use_ray:
        from convir.ray_cluster import require_ray

        require_ray()  # before loading a model: a missing extra fails at once
    if views:
        from convir.models.views import augment_of

        augment_of(view_augment)  # an unknown preset fails before any work
    files = list_images(folder)  # before loading a model: a wrong folder fails at once
    sentence_model = None
    if text_model is not None:  # before embedding: a missing extra or model fails now
        from convir.models.text_model import load_text_model

        sentence_model = load_text_model(text_model)
    captioning = None
    if captioner is not None:  # before embedding: a missing model or a down server fails now
        from convir.models.captioner import load_captioner

        captioning = load_captioner(captioner, device)
    model, pretrained = _resolve_weights(model, pretrained)
    embedder = load_embedder(model, pretrained, device)
    root = str(folder.resolve())
    index = None
    if factory is not None:  # check the string (and that it can be trained) before embedding
        index = GalleryIndex(
            embedder.dim, factory, model=model, pretrained=pretrained, image_root=root
        )
        if len(files) < index.min_train_vectors:
            raise InputError(
                f"--factory {factory!r} needs at least {index.min_train_vectors} images to "
                f"train, the folder has {len(files)}; use fewer IVF lists, or Flat"
            )
    if use_ray:
        shards = _embed_with_ray(
            files, folder, model, pretrained, batch_size, max_pixels, ray_address, concurrency,
            progress,
        )  # fmt: skip
    else:
        shards = [
            embed_images(
                files,
                folder,
                embedder,
                batch_size=batch_size,
                max_pixels=max_pixels,
                workers=workers,
                progress=progress,
            )
        ]
    count = sum(len(s.ids) for s in shards)
    skipped = sum(len(s.skipped) for s in shards)
    if not count:
        raise InputError(
            f"none of the {len(files)} image files under {folder} could be read "
            "(see the warnings above)"
        )
    if index is None:
        index = GalleryIndex(
            embedder.dim,
            default_factory(count, embedder.dim),
            model=model,
            pretrained=pretrained,
            image_root=root,
        )
    from convir.index.ray_index import build_from_shards  # no Ray import: shards are arrays

    build_from_shards(index, shards)
    note = ""
    if captions is not None or captioning is not None:
        note = "; captions: " + _attach_captions(index, captions, captioning, captioner, progress)
    if sentence_model is not None:
        note += "; " + attach_caption_vectors(index, sentence_model, progress=progress)
    if views:
        from convir.index.views import attach_views

        note += "; " + attach_views(index, embedder, views, view_augment, progress=progress)
    index.save(out)
    typer.echo(
        f"indexed {index.count} images, skipped {skipped}, wrote {out} ({index.factory}, "
        f"{model}){note}"
    )
    return out


def build_captions_only(
    file: Path, text_model: str, out: Path, *, factory: str | None = None, progress: bool = True
) -> Path:
    """What ``convir index --captions-only FILE --text-model NAME`` does: read, embed, save;
    prints the one summary line and returns ``out``."""
    from convir.index.captions_only import build_captions_index, read_caption_file
    from convir.models.text_model import load_text_model

    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file path such as {out}/gallery.index")
    items = read_caption_file(file)  # before loading a model: a bad file fails at once
    model = load_text_model(text_model)
    build_captions_index(items, model, out, progress=progress, factory=factory)
    captions = sum(len(item.captions) for item in items)
    typer.echo(
        f"indexed {len(items)} items ({captions} captions, no images), wrote {out} "
        f"(text model {model.name})"
    )
    return out


def attach_caption_vectors(index: GalleryIndex, model: TextModel, *, progress: bool = False) -> str:
    """Embed every item's caption with ``model`` into ``index`` (zero rows where an item has
    no caption); a summary."""
    import numpy as np

    texts = index.captions or [None] * index.count
    have = [i for i, t in enumerate(texts) if t]
    vectors = np.zeros((index.count, model.dim), np.float32)
    batch = 256
    starts = range(0, len(have), batch)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="embedding captions", unit="batch")
    for start in starts:
        rows = have[start : start + batch]
        vectors[rows] = model.encode([texts[i] for i in rows])
    index.set_caption_vectors(vectors, model.name)
    return f"caption vectors: {len(have)} by {model.name}"


def _attach_captions(
    index: GalleryIndex,
    captions: Path | None,
    text_model: Captioner | None,
    captioner: str | None,
    progress: bool,
) -> str:
    """Read or compute one text per indexed image and store them in ``index``; a summary."""
    from convir.index.captions import caption_images, read_captions_file

    if captions is not None:
        texts, report = read_captions_file(captions, index.ids, index.paths)
        source = f"file:{captions.name}"
    else:
        texts, report = caption_images(text_model, index.paths, progress=progress)
        source = f"captioner:{captioner}"
    index.set_captions(texts, source)
    return report.summary()


def _embed_with_ray(
    files: list[Path],
    folder: Path,
    model: str,
    pretrained: str,
    batch_size: int,
    max_pixels: int,
    address: str | None,
    concurrency: int | None,
    progress: bool,
) -> list[FolderEmbedding]:
    """Shards embedded by Ray actors on the cluster at ``address`` (see ``ray_index``)."""
    from convir.index.ray_index import embed_images_ray
    from convir.ray_cluster import cluster_count, ray_cluster

    with ray_cluster(address) as ray:
        gpus, cpus = cluster_count(ray, "GPU"), cluster_count(ray, "CPU")
        actors = concurrency or gpus or max(1, cpus)
        have, kind = (gpus, "GPU") if gpus else (cpus, "CPU")
        if actors > have:  # the extra actors would wait for a free slot forever
            raise InputError(
                f"--concurrency {actors}: the Ray cluster has {have} {kind}s and each actor "
                f"takes one; pass --concurrency {max(1, have)} or fewer, or add nodes"
            )
        return embed_images_ray(
            files,
            folder,
            model,
            pretrained,
            batch_size=batch_size,
            concurrency=actors,
            num_gpus=1 if gpus else 0,
            max_pixels=max_pixels,
            progress=progress,
        )


def search_command(
    index_path: Path = typer.Argument(..., metavar="INDEX", help="Index file from `convir index`."),
    query: str = typer.Argument(..., help="Text describing the image you look for."),
    k: int = typer.Option(10, "-k", "--top-k", min=1, help="Number of results."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines."),
    model: str | None = typer.Option(
        None, "--model", help="Override the model recorded in the index."
    ),
    pretrained: str | None = typer.Option(
        None, "--pretrained", help="Override the weights recorded in the index (if moved)."
    ),
    nprobe: int | None = typer.Option(None, "--nprobe", min=1, help="IVF lists to visit."),
    ef_search: int | None = typer.Option(None, "--ef-search", min=1, help="HNSW search depth."),
    device: str = typer.Option("cpu", "--device", help="torch device for the text encoder."),
) -> None:
    """Search an index with a text query: prints `rank  score  path`, best first (at most
    as many results as the index holds)."""
    from convir.errors import IndexFileError
    from convir.index.faiss_index import GalleryIndex
    from convir.models.embedder import load_embedder

    if not query.strip():
        raise InputError("QUERY is empty; describe the image to look for")
    index = GalleryIndex.load(index_path)
    model = model or index.model
    pretrained = pretrained or index.pretrained
    if model is None and index.text_model:  # a captions-only gallery: its text model
        from convir.models.text_model import TextEmbedder, load_text_model

        embedder = TextEmbedder(load_text_model(index.text_model))
        model = index.text_model
    elif model is None:
        raise InputError(f"{index_path} records no model; pass --model and --pretrained")
    else:
        try:
            embedder = load_embedder(model, pretrained, device)
        except ModelError as exc:
            raise ModelError(
                f"{exc} (the index was built with --model {model} --pretrained {pretrained}; "
                "pass --pretrained to point at the weights if they moved)"
            ) from exc
    if embedder.dim != index.dim:
        raise IndexFileError(
            f"{index_path} holds {index.dim}-d vectors but {model} embeds text into "
            f"{embedder.dim}-d; search it with the model it was built with"
        )
    if nprobe is not None:
        index.nprobe = nprobe
    if ef_search is not None:
        index.ef_search = ef_search
    vector = embedder.encode_text([query]).pooled.float().cpu().numpy()
    hits = index.hits(vector, k)[0]
    if as_json:
        results = [h._asdict() for h in hits]
        typer.echo(json.dumps({"query": query, "index": str(index_path), "results": results}))
        return
    for hit in hits:
        typer.echo(f"{hit.rank:>4}  {hit.score:.4f}  {hit.path or hit.id}")
