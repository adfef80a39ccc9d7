"""Benchmark loaders: the real files (when present), their published siblings as synthetic
fixtures (test splits without targets), and malformed or mismatched files."""

import time

import pytest

from convir.errors import InputError
from convir.evaluation import loaders

REAL = {
    "chatir/VisDial_v1.0_queries_val.json": {
        "format": "chatir",
        "queries": 2064,
        "rounds": 11,
        "has_targets": True,
        "variant": "dialog",
    },
    "chatir/ChatGPT_BLIP2.json": {"format": "chatir", "queries": 2064, "variant": "dialog"},
    "chatir/VisDial_v1_0_queries_val_dar_refined.json": {
        "format": "chatir",
        "queries": 2064,
        "rounds": 11,
        "variant": "refined",
    },
    "chatir/Search_Space_val_50k.json": {"format": "chatir-search-space", "images": 50000},
    "cirr/cap.rc2.val.json": {"format": "cirr", "queries": 4181, "has_targets": True},
    "cirr/split.rc2.val.json": {"format": "cirr-split", "images": 2297},
    "circo/val.json": {"format": "circo", "queries": 220, "has_targets": True},
    "fashioniq/cap.dress.val.json": {"format": "fashioniq", "queries": 2017, "has_targets": True},
    "fashioniq/split.dress.val.json": {"format": "fashioniq-split", "images": 3817},
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_inspect_recognises_every_real_file_quickly(benchmarks, name):
    path = benchmarks / name
    if not path.is_file():
        pytest.skip(f"{name} absent")
    start = time.process_time()
    summary = loaders.inspect_file(path)
    assert time.process_time() - start < 1.0
    assert summary.items() >= REAL[name].items()


def test_every_shared_benchmark_file_is_recognised(benchmarks):
    files = sorted(benchmarks.rglob("*.json"))
    assert files
    for path in files:
        assert loaders.inspect_file(path)["format"] in loaders.ALL_FORMATS, path


def test_real_chatir_queries_follow_the_protocol(benchmarks):
    dialog = loaders.load_chatir_dialogues(benchmarks / "chatir/VisDial_v1.0_queries_val.json")
    first = dialog.dialogues[0]
    assert dialog.queries(0)[0] == first.dialog[0]
    assert dialog.queries(2)[0] == ", ".join(first.dialog[:3])
    refined = loaders.load_chatir_dialogues(
        benchmarks / "chatir/VisDial_v1_0_queries_val_dar_refined.json"
    )
    assert refined.targets == dialog.targets
    assert refined.queries(3)[0] == refined.dialogues[0].dialog[3]
    space = set(loaders.load_search_space(benchmarks / "chatir/Search_Space_val_50k.json"))
    assert set(dialog.targets) <= space
    with pytest.raises(InputError, match="round 11 does not exist"):
        dialog.queries(11)


def test_real_cirr_circo_fashioniq_records(benchmarks):
    cirr = loaders.load_cirr_captions(benchmarks / "cirr/cap.rc2.val.json")
    split = loaders.load_cirr_split(benchmarks / "cirr/split.rc2.val.json")
    assert all(t.reference in split and t.target_hard in split for t in cirr)
    circo = loaders.load_circo(benchmarks / "circo/val.json")
    assert all(q.gt_img_ids[0] == q.target_img_id for q in circo)
    fiq = loaders.load_fashioniq_captions(benchmarks / "fashioniq/cap.dress.val.json")
    gallery = set(loaders.load_fashioniq_split(benchmarks / "fashioniq/split.dress.val.json"))
    assert all(t.target in gallery and t.candidate in gallery for t in fiq)


# ---- published siblings, as small synthetic files


def test_cirr_test1_has_no_targets(write_json):
    rec = {
        "pairid": 12063,
        "reference": "test1-147-1-img1",
        "caption": "remove all but one dog",
        "img_set": {
            "id": 1,
            "members": ["test1-147-1-img1", "test1-83-1-img1"],
            "reference_rank": 0,
        },
    }
    path = write_json("cap.rc2.test1.json", [rec])
    summary = loaders.inspect_file(path)
    assert summary == {
        "format": "cirr",
        "queries": 1,
        "has_targets": False,
        "split": "test1",
        "images": 2,
    }
    assert loaders.load_cirr_captions(path)[0].target_hard is None


def test_cirr_extended_captions(write_json):
    rec = {"pairid": 1, "reference": "dev-1-0-img0", "caption_extend": {"0": "a", "1": "b"}}
    path = write_json("cap.ext.rc2.test1.json", [rec])
    assert loaders.inspect_file(path) == {"format": "cirr-ext", "queries": 1, "has_targets": False}


def test_circo_test_has_no_targets(write_json):
    rec = {"reference_img_id": 281438, "relative_caption": "x", "shared_concept": "y", "id": 0}
    summary = loaders.inspect_file(write_json("test.json", [rec, {**rec, "id": 1}]))
    assert summary == {"format": "circo", "queries": 2, "has_targets": False}


def test_fashioniq_test_has_no_target_and_splits_are_id_lists(write_json):
    caps = [{"candidate": "B00E9AWYWO", "captions": ["is lighter", "is white"]}]
    summary = loaders.inspect_file(write_json("cap.shirt.test.json", caps))
    assert summary == {"format": "fashioniq", "queries": 1, "has_targets": False, "images": 1}
    split = write_json("split.shirt.test.json", ["B00E9AWYWO", "B005LA6IKA"])
    assert loaders.inspect_file(split) == {"format": "fashioniq-split", "images": 2}


def test_chatir_siblings_and_search_space_by_content(write_json):
    human = write_json(
        "Human_BLIP2.json",
        [{"img": "unlabeled2017/1.jpg", "dialog": ["a dog", "is it brown? yes", "big? no"]}],
    )
    assert loaders.inspect_file(human) == {
        "format": "chatir",
        "queries": 1,
        "has_targets": True,
        "rounds": 3,
        "min_rounds": 3,
        "variant": "dialog",
    }
    # the file name says nothing: the content decides
    space = write_json("whatever.json", ["unlabeled2017/1.jpg", "unlabeled2017/2.jpg"])
    assert loaders.inspect_file(space) == {"format": "chatir-search-space", "images": 2}
    assert loaders.load_search_space(space) == ["unlabeled2017/1.jpg", "unlabeled2017/2.jpg"]
    cirr_split = write_json("s.json", {"dev-1-0-img0": "./dev/dev-1-0-img0.png"})
    assert loaders.load_search_space(cirr_split) == ["dev-1-0-img0"]


def test_refined_variant_detection(write_json):
    recs = [{"img": "a.jpg", "dialog": ["a dog", "a brown dog", "a big brown dog"]}]
    data = loaders.load_chatir_dialogues(write_json("refined.json", recs))
    assert data.variant == "refined" and data.queries(1) == ["a brown dog"]
    forced = loaders.load_chatir_dialogues(write_json("r2.json", recs), variant="dialog")
    assert forced.queries(1) == ["a dog, a brown dog"]


# ---- malformed and mismatched files


def test_malformed_record_names_format_index_and_field(write_json):
    good = {"img": "a.jpg", "dialog": ["cap"]}
    path = write_json("d.json", [good, good, good, {"img": "b.jpg", "dialog": "cap"}])
    with pytest.raises(InputError) as err:
        loaders.load_chatir_dialogues(path)
    msg = str(err.value)
    assert "ChatIR dialogues" in msg and "record 3, field dialog" in msg and '"b.jpg"' in msg


def test_wrong_loader_names_expected_format_and_what_the_file_looks_like(write_json):
    path = write_json("d.json", [{"img": "a.jpg", "dialog": ["cap"]}])
    with pytest.raises(InputError) as err:
        loaders.load_cirr_captions(path)
    msg = str(err.value)
    assert "CIRR captions" in msg and "record 0" in msg and "looks like format 'chatir'" in msg
    space = write_json("s.json", ["unlabeled2017/1.jpg"])
    with pytest.raises(InputError, match="CIRCO annotations.*record 0"):
        loaders.load_circo(space)
    with pytest.raises(InputError, match="a 'chatir' file, not a search space"):
        loaders.load_search_space(path)


@pytest.mark.parametrize(
    "content, match",
    [
        ("[{", r"not valid JSON at line 1"),
        ("[]", r"empty list"),
        ("42", r"JSON int"),
        ('[{"foo": 1}]', r"record 0 has keys \['foo'\]"),
        ('{"a": 1}', r"not a CIRR split"),
        ('["x", 3]', r"entry 1 is 3"),
        ('["x", "x"]', r"record 1 repeats image 'x' of record 0"),
    ],
)
def test_inspect_rejects_broken_files(tmp_path, content, match):
    path = tmp_path / "f.json"
    path.write_text(content)
    with pytest.raises(InputError, match=match):
        loaders.inspect_file(path)


def test_cross_record_checks(write_json):
    q = {"reference_img_id": 1, "relative_caption": "x", "shared_concept": "y", "id": 0}
    with_t = {**q, "id": 1, "target_img_id": 5, "gt_img_ids": [5]}
    with pytest.raises(InputError, match="record 1 has 'target_img_id' unlike record 0"):
        loaders.load_circo(write_json("mixed.json", [q, with_t]))
    with pytest.raises(InputError, match="record 1 repeats id 0"):
        loaders.load_circo(write_json("dup.json", [q, q]))
    with pytest.raises(InputError, match="target_img_id must be one of gt_img_ids"):
        loaders.load_circo(write_json("gt.json", [{**with_t, "gt_img_ids": [6]}]))
    cirr = {
        "pairid": 1,
        "reference": "r",
        "caption": "c",
        "img_set": {"id": 1, "members": ["a", "b"]},
    }
    with pytest.raises(InputError, match="reference image must be one of img_set.members"):
        loaders.load_cirr_captions(write_json("cirr.json", [cirr]))


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        loaders.inspect_file(tmp_path / "nope.json")
