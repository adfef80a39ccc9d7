import json
import zipfile

import numpy as np
import pytest

import convir.index.archive as archive
import convir.index.faiss_index as fi
from convir.errors import IndexFileError, InputError
from convir.index.faiss_index import GalleryIndex, default_factory


def unit(n, d=32, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def names(n, prefix="img"):
    ids = [f"{prefix}/{i:04d}.png" for i in range(n)]
    return ids, [f"/data/{i}" for i in ids]


def build(n=400, factory="Flat", seed=0, **kw):
    x = unit(n, seed=seed)
    return x, GalleryIndex.build(x, *names(n), factory=factory, **kw)


@pytest.mark.parametrize("factory", ["Flat", "IVF8,Flat", "HNSW16"])
def test_each_factory_returns_the_exact_neighbour_of_a_gallery_vector(factory):
    x, index = build(400, factory)
    scores, positions = index.search(x, 5)
    assert scores.shape == positions.shape == (400, 5)
    assert (positions[:, 0] == np.arange(400)).all()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all(), "rows must be best first"
    if factory == "Flat":  # exact: the rest of the row is the true top-5 by cosine
        truth = np.argsort(-(x @ x.T), axis=1)[:, :5]
        assert (positions == truth).all()


def test_pq_factory_trains_on_the_vectors_and_ranks_each_vector_near_itself():
    x, index = build(700, "IVF4,PQ8x4")
    assert index.is_trained and index.count == 700 and index.nprobe == 4
    _, positions = index.search(x, 10)
    assert (positions == np.arange(700)[:, None]).any(axis=1).mean() > 0.95


def test_search_params_are_settable_and_only_where_they_apply():
    _, ivf = build(400, "IVF8,Flat")
    assert ivf.nprobe == 8 and ivf.ef_search is None  # default: all 8 lists (fewer than 16)
    ivf.nprobe = 3
    assert ivf.nprobe == 3
    with pytest.raises(InputError, match="--ef-search applies to HNSW"):
        ivf.ef_search = 10
    _, hnsw = build(100, "HNSW8")
    assert hnsw.ef_search == fi.DEFAULT_EF_SEARCH and hnsw.nprobe is None
    hnsw.ef_search = 5
    assert hnsw.ef_search == 5
    with pytest.raises(InputError, match="--nprobe applies to IVF"):
        hnsw.nprobe = 2


def test_ids_and_paths_follow_positions():
    x, index = build(50)
    ids, paths = names(50)
    assert index.ids == ids and index.paths == paths and len(index) == 50
    assert index.position_of("img/0007.png") == 7
    assert index.id_of(7) == "img/0007.png" and index.path_of(7) == "/data/img/0007.png"
    more = unit(3, seed=9)
    index.add(more, ["x", "y", "z"], ["/p/x", "/p/y", "/p/z"])
    assert index.position_of("z") == 52 and index.path_of(51) == "/p/y"
    hit = index.hits(more[1], 1)[0][0]
    assert (hit.rank, hit.position, hit.id, hit.path) == (1, 51, "y", "/p/y")
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(KeyError, match="nope"):
        index.position_of("nope")
    with pytest.raises(IndexError):
        index.id_of(53)


def test_bad_additions_are_refused_without_changing_the_index():
    x, index = build(10)
    with pytest.raises(InputError, match="duplicate gallery id 'img/0003.png'"):
        index.add(unit(1, seed=1), ["img/0003.png"], ["/q"])
    with pytest.raises(InputError, match="duplicate gallery id 'n'"):
        index.add(unit(2, seed=1), ["n", "n"], ["/1", "/2"])
    with pytest.raises(InputError, match="2 vectors, 1 ids and 2 paths"):
        index.add(unit(2, seed=1), ["n"], ["/1", "/2"])
    with pytest.raises(InputError, match=r"shape \[N, 32\]"):
        index.add(np.ones((2, 31), np.float32), ["p", "q"], ["/p", "/q"])
    with pytest.raises(InputError, match="all-zero rows"):
        index.add(np.zeros((1, 32), np.float32), ["p"], ["/p"])
    assert index.count == 10 and len(index.ids) == 10


def test_k_above_the_count_returns_everything_once_best_first():
    x, index = build(5)
    scores, positions = index.search(x[:2], 50)
    assert positions.shape == (2, 5)
    assert sorted(positions[0]) == [0, 1, 2, 3, 4] and positions[0, 0] == 0
    np.testing.assert_allclose(scores[0], np.sort(x[0] @ x.T)[::-1], atol=1e-5)
    assert [len(row) for row in index.hits(x[:2], 50)] == [5, 5]
    with pytest.raises(InputError, match="-k must be at least 1"):
        index.search(x[:1], 0)


def test_neighbours_an_ivf_probe_misses_are_padded_with_minus_one():
    x, index = build(400, "IVF8,Flat")
    index.nprobe = 1
    scores, positions = index.search(x[:20], 400)
    missing = positions == -1
    assert missing.any() and (np.isneginf(scores) == missing).all()
    for row in range(20):  # found items come first, then only padding
        found = (~missing[row]).sum()
        assert not missing[row, :found].any() and missing[row, found:].all()
    hits = index.hits(x[:20], 400)
    assert [len(h) for h in hits] == list((~missing).sum(axis=1))


def test_gallery_vectors_are_normalised_and_queries_used_as_given():
    x = unit(20)
    index = GalleryIndex.build(3.0 * x, *names(20))
    scores, positions = index.search(2.0 * x[4], 1)
    assert positions[0, 0] == 4 and scores[0, 0] == pytest.approx(2.0, abs=1e-4)


def test_trainable_factories_need_training_and_enough_vectors():
    index = GalleryIndex(32, "IVF64,Flat")
    assert not index.is_trained and index.min_train_vectors == 64
    with pytest.raises(InputError, match="not trained: call train"):
        index.add(unit(100), *names(100))
    with pytest.raises(InputError, match="needs at least 64 vectors to train, got 30"):
        index.train(unit(30))
    assert GalleryIndex(32, "IVF4,PQ8").min_train_vectors == 256  # 8-bit PQ codebooks
    with pytest.raises(InputError, match="--factory: faiss cannot build 'IVF4,Bogus'"):
        GalleryIndex(32, "IVF4,Bogus")


def test_default_factory_follows_the_measured_rule():
    """Flat up to 50k, HNSW32 up to 1M, IVF<n>,SQ8 above (docs/performance.md)."""
    assert default_factory(10) == "Flat"
    assert default_factory(50_000, 128) == "Flat"
    assert default_factory(50_001, 128) == "HNSW32"
    assert default_factory(1_000_000, 128) == "HNSW32"
    assert default_factory(1_000_001, 128) == "IVF4096,SQ8"
    assert default_factory(10_000_000, 512) == "IVF16384,SQ8"
    assert default_factory(10_000_000) == default_factory(10_000_000, 130)  # dim-independent
    for count in (1_000_001, 10_000_000, 100_000_000):
        factory = default_factory(count, 128)
        nlist = int(factory.split(",")[0][3:])
        assert nlist == fi.ivf_nlist(count) and 39 * nlist <= count  # enough k-means points
        assert GalleryIndex(128, factory).nlist == nlist  # faiss parses it


def test_default_search_parameters_are_the_measured_ones():
    assert GalleryIndex(128, "HNSW32").ef_search == fi.DEFAULT_EF_SEARCH == 64
    # about 2*sqrt(nlist), at least 16, never more lists than there are
    assert [fi.default_nprobe(n) for n in (8, 64, 256, 1024, 4096, 16384)] == [
        8,
        16,
        32,
        64,
        128,
        256,
    ]
    assert GalleryIndex(128, "IVF4096,SQ8").nprobe == 128
    assert GalleryIndex(32, "IVF256,Flat").nprobe == 32


def embedding_like(n, d=64, seed=0):
    """Unit vectors with a decaying spectrum around a common direction, as CLIP embeddings
    have (random isotropic vectors are the worst case no approximate index handles)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) / np.sqrt(1.0 + np.arange(d)) + 0.5 / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    "factory, floor",
    # HNSW32 at efSearch 64: 0.998-1.0 here (0.99 at 1M in the benchmark). IVF64 at 16 lists
    # sits at 0.95-0.97 on these small sets depending on the seed, so the test asks less of
    # it and checks it is far above faiss's own nprobe=1 (0.36); the 0.95 evidence for the
    # IVF default is the benchmark's 0.985 at 1M (docs/performance.md).
    [("HNSW32", 0.95), ("IVF64,SQ8", 0.9)],
)
def test_default_search_parameters_reach_the_recall_target(factory, floor):
    x, queries = embedding_like(5000), embedding_like(200, seed=1)
    ids = [str(i) for i in range(len(x))]
    exact = GalleryIndex.build(x, ids, ids, factory="Flat").search(queries, 10)[1]
    found = GalleryIndex.build(x, ids, ids, factory=factory).search(queries, 10)[1]
    recall = np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, exact, strict=True)])
    assert recall >= floor


@pytest.mark.parametrize("factory", ["Flat", "IVF8,Flat", "HNSW16"])
def test_save_and_load_round_trip(tmp_path, factory):
    x, index = build(300, factory, model="m", pretrained="/w.pt", image_root="/data")
    if index.nprobe is not None:
        index.nprobe = 3
    path = index.save(tmp_path / "g.index")
    loaded = GalleryIndex.load(path)
    assert loaded.meta == index.meta
    assert loaded.meta.count == 300 and loaded.meta.factory == factory
    assert (loaded.model, loaded.pretrained, loaded.image_root) == ("m", "/w.pt", "/data")
    assert loaded.ids == index.ids and loaded.paths == index.paths
    assert (loaded.nprobe, loaded.ef_search) == (index.nprobe, index.ef_search)
    q = unit(25, seed=7)
    for a, b in zip(index.search(q, 10), loaded.search(q, 10), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.index"]
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["convir-index.json", "ids.json", "paths.json", "index.faiss"]
        assert json.loads(zf.read("convir-index.json"))["format"] == "convir-index"


@pytest.mark.parametrize(
    ("crash", "expected"),
    [
        (RuntimeError, RuntimeError),
        (KeyboardInterrupt, KeyboardInterrupt),
        (OSError, IndexFileError),
    ],
)
def test_a_crash_mid_save_keeps_the_previous_index(tmp_path, monkeypatch, crash, expected):
    path = tmp_path / "g.index"
    _, old = build(30, seed=1)
    old.save(path)
    before = path.read_bytes()
    _, new = build(60, seed=2)

    def half_written(zf, index):
        with zf.open("index.faiss", "w") as member:
            member.write(b"\0" * 1000)  # some bytes reach the temp file, then the crash
        raise crash("simulated crash")

    monkeypatch.setattr(archive, "_write_faiss", half_written)
    with pytest.raises(expected, match="simulated crash"):
        new.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.index"], "temp file left behind"
    assert path.read_bytes() == before
    assert GalleryIndex.load(path).ids == old.ids
    monkeypatch.undo()
    new.save(path)
    assert GalleryIndex.load(path).count == 60


def _rewrite(src, dst, **meta_changes):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "convir-index.json":
                data = json.dumps(json.loads(data) | meta_changes).encode()
            zout.writestr(name, data)
    return dst


def _flip_a_faiss_byte(src, dst):
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo("index.faiss")
    name_len, extra_len = np.frombuffer(data[info.header_offset + 26 :][:4], "<u2")
    start = info.header_offset + 30 + int(name_len) + int(extra_len)
    data[start + info.file_size // 2] ^= 0xFF  # inside the vectors: only the CRC notices
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda src, dst: dst.write_bytes(b"\x00garbage" * 100), "damaged or not a convir index"),
        (lambda src, dst: dst.write_bytes(src.read_bytes()[:700]), "damaged or not a convir index"),
        (_flip_a_faiss_byte, "damaged or not a convir index"),
        (lambda src, dst: zipfile.ZipFile(dst, "w").close(), "not a convir index"),
        (lambda src, dst: _rewrite(src, dst, version=99), "format 99.*upgrade convir"),
        (lambda src, dst: _rewrite(src, dst, count=31), "inconsistent"),
        (lambda src, dst: dst.mkdir(), "is a folder"),
    ],
)
def test_damaged_index_files_raise_index_file_error(tmp_path, damage, message):
    _, index = build(30)
    good = index.save(tmp_path / "good.index")
    bad = tmp_path / "bad.index"
    damage(good, bad)
    with pytest.raises(IndexFileError, match=message):
        GalleryIndex.load(bad)


def test_missing_index_file_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexFileError, match=r"no index file at .*convir index FOLDER --out"):
        GalleryIndex.load(tmp_path / "nothing.index")


def test_ids_of_many_positions_checks_them_once():
    _, index = build(30, seed=3)
    assert index.ids_of([4, 0, 29]) == [index.id_of(4), index.id_of(0), index.id_of(29)]
    assert index.ids_of([]) == []
    with pytest.raises(IndexError):
        index.ids_of([1, 30])
