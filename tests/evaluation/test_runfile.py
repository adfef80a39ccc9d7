"""Run files: every bad-input case is an error naming the line, or the documented handling."""

import json
import math

import numpy as np
import pytest

from convir.errors import InputError
from convir.evaluation import loaders, runfile, scoring, submission

CIRR_MEMBERS = [f"dev-{i}-0-img0" for i in range(1, 7)]  # as in conftest's cirr_files


def line(did="a", rnd=0, target="t", ranking=("x", "t")):
    return {"dialogue_id": did, "round": rnd, "target": target, "ranking": list(ranking)}


def test_chatir_run_ranks_and_scores(chatir_run):
    run = runfile.read_chatir_run(chatir_run)
    assert run.dialogue_ids == ["a", "b"] and run.targets == ["t1", "t2"] and run.rounds == 3
    assert run.ranks().tolist() == [[12, 3, 20], [math.inf, math.inf, 9]]
    scores = scoring.score_chatir(run, k=10)
    assert scores.hits_at_k == [0.0, 0.5, 1.0]
    assert scores.recall_at_k == [0.0, 0.5, 0.5]
    assert scores.not_found == 2 and scores.missing_rank == 25  # longest ranking
    assert scores.as_json().keys() == {"hits_at_k", "recall_at_k", "bri", "k", "dialogues"}


def test_bri_cap_is_the_search_space_size_when_given(chatir_run):
    run = runfile.read_chatir_run(chatir_run)
    scores = scoring.score_chatir(run, k=10, search_space_size=1000)
    a = ((math.log(13) + math.log(4)) / 2 + math.log(4)) / 2  # best ranks 12, 3, 3
    b = (math.log(1001) + (math.log(1001) + math.log(10)) / 2) / 2  # best 1000, 1000, 9
    assert scores.bri == pytest.approx((a + b) / 2)


def test_rounds_out_of_order_are_sorted(write_jsonl):
    rows = [line(rnd=2, ranking=["t"]), line(rnd=0, ranking=["x", "y", "t"]), line(rnd=1)]
    run = runfile.read_chatir_run(write_jsonl("r.jsonl", rows))
    assert run.ranks().tolist() == [[2, 1, 0]]


def test_integer_ids_are_compared_as_strings(write_jsonl):
    rows = [{"dialogue_id": 3, "round": 0, "target": 7, "ranking": [5, "7"]}]
    run = runfile.read_chatir_run(write_jsonl("r.jsonl", rows))
    assert run.dialogue_ids == ["3"] and run.ranks().tolist() == [[1]]


def test_empty_ranking_counts_as_not_found(write_jsonl):
    rows = [line(did="a", ranking=[]), line(did="b", ranking=["t"])]
    scores = scoring.score_chatir(runfile.read_chatir_run(write_jsonl("r.jsonl", rows)), 10)
    assert scores.hits_at_k == [0.5] and scores.missing_rank == 1
    # BRI: a at the cap (1) -> ln 2, b at 0 -> 0
    assert scores.bri == pytest.approx(math.log(2) / 2)


def test_all_rankings_empty_needs_a_search_space_for_bri(write_jsonl):
    run = runfile.read_chatir_run(write_jsonl("r.jsonl", [line(ranking=[])]))
    with pytest.raises(InputError, match="--search-space"):
        scoring.score_chatir(run, 10)
    assert scoring.score_chatir(run, 10, search_space_size=9).bri == pytest.approx(math.log(10))


def test_k_larger_than_the_ranking(write_jsonl):
    run = runfile.read_chatir_run(write_jsonl("r.jsonl", [line(ranking=["x", "t"])]))
    assert scoring.score_chatir(run, k=50).hits_at_k == [1.0]


@pytest.mark.parametrize(
    "rows, tail, match",
    [
        ([line(), line()], "", r"line 2 repeats dialogue 'a' round 0 of line 1"),
        ([line(rnd=0), line(rnd=2)], "", r"no round 1"),
        ([line(rnd=1)], "", r"no round 0"),
        ([line(did="a"), line(did="b"), line(did="b", rnd=1)], "", r"'b' has 2 rounds.*'a' has 1"),
        ([line(rnd=0), line(rnd=1, target="u")], "", r"line 2: dialogue 'a' has target 'u'"),
        ([line(ranking=["x", "t", "x"])], "", r"line 1: id 'x' appears twice .*positions 0 and 2"),
        ([line()], '{"dialogue_id": "a", "round": 1, "tar', r"line 2 \(the last line\).*truncated"),
        ([line(rnd="1")], "", r"line 1 .*field round"),
        ([line(rnd=-1)], "", r"line 1 .*field round"),
        ([line(rnd=True)], "", r"line 1 .*field round"),
        ([line(ranking=["x", None])], "", r"line 1 .*field ranking\.1"),
        ([{**line(), "ranking": "xt"}], "", r"line 1 .*field ranking"),
        ([{"query_id": 1, "ranking": []}], "", r"field dialogue_id.*use --protocol circo"),
        ([], "", r"empty"),
    ],
)
def test_bad_chatir_runs_are_errors_naming_the_line(write_jsonl, rows, tail, match):
    with pytest.raises(InputError, match=match):
        runfile.read_chatir_run(write_jsonl("r.jsonl", rows, tail))


def test_invalid_json_in_the_middle_is_not_called_truncated(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(line()) + "\n{oops\n" + json.dumps(line(rnd=1)) + "\n")
    with pytest.raises(InputError, match=r"line 2 is not valid JSON") as err:
        runfile.read_chatir_run(path)
    assert "truncated" not in str(err.value)


def test_blank_lines_are_skipped_and_line_numbers_stay_true(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("\n" + json.dumps(line()) + "\n\n" + json.dumps(line()) + "\n")
    with pytest.raises(InputError, match="line 4 repeats .* of line 2"):
        runfile.read_chatir_run(path)


def test_search_space_rejects_unknown_ids_and_targets(write_jsonl):
    path = write_jsonl("r.jsonl", [line(ranking=["t", "zz"])])
    with pytest.raises(InputError, match=r"line 1: ranked id 'zz' is not in the search space"):
        runfile.read_chatir_run(path, search_space=["t", "x"])
    path = write_jsonl("r2.jsonl", [line(target="q", ranking=["x"])])
    with pytest.raises(InputError, match=r"target 'q' is not in the search space"):
        runfile.read_chatir_run(path, search_space=["t", "x"])


def test_query_runs(write_jsonl):
    run = runfile.read_query_run(write_jsonl("q.jsonl", [{"query_id": 5, "ranking": [1, "b"]}]))
    assert run.rankings == {"5": ["1", "b"]}
    bad = write_jsonl("d.jsonl", [{"query_id": "5", "ranking": []}, {"query_id": 5, "ranking": []}])
    with pytest.raises(InputError, match="line 2 repeats query_id '5' of line 1"):
        runfile.read_query_run(bad)
    chat = write_jsonl("c.jsonl", [line()])
    with pytest.raises(InputError, match="field query_id.*use --protocol chatir"):
        runfile.read_query_run(chat)


# ---- composed-retrieval scoring


def test_score_cirr(cirr_files):
    captions, run = cirr_files
    scores = scoring.score_cirr(runfile.read_query_run(run), loaders.load_cirr_captions(captions))
    assert scores.results == {
        "recall_at": {1: 0.5, 5: 1.0, 10: 1.0, 50: 1.0},
        "recall_subset_at": {1: 0.5, 2: 1.0, 3: 1.0},
    }
    assert scores.short_misses == 0 and scores.subset_undetermined == 0


def test_cirr_counts_undetermined_subset_ranks(cirr_files, write_jsonl):
    captions, _ = cirr_files
    run = write_jsonl(
        "r.jsonl", [{"query_id": 1, "ranking": ["dev-9-0-img0"]}, {"query_id": 2, "ranking": []}]
    )
    scores = scoring.score_cirr(runfile.read_query_run(run), loaders.load_cirr_captions(captions))
    assert scores.results["recall_subset_at"] == {1: 0.0, 2: 0.0, 3: 0.0}
    assert scores.subset_undetermined == 2 and scores.short_misses == 2


def test_score_circo(circo_files):
    ann, run = circo_files
    scores = scoring.score_circo(runfile.read_query_run(run), loaders.load_circo(ann))
    ap0 = (1 + 2 / 3 + 3 / 5) / 4
    assert scores.results["map_at"] == pytest.approx(
        {5: ap0 / 2, 10: (ap0 + 1 / 7) / 2, 25: (ap0 + 1 / 7) / 2, 50: (ap0 + 1 / 7) / 2}
    )
    assert scores.results["recall_at"] == {5: 0.5, 10: 1.0, 25: 1.0, 50: 1.0}


def test_score_fashioniq(fashioniq_files):
    ann, run = fashioniq_files
    scores = scoring.score_fashioniq(
        runfile.read_query_run(run), loaders.load_fashioniq_captions(ann)
    )
    assert scores.results == {"recall_at": pytest.approx({10: 1 / 3, 50: 2 / 3})}
    assert scores.short_misses == 1  # the empty ranking


def test_run_must_cover_exactly_the_annotated_queries(circo_files, write_jsonl):
    ann, _ = circo_files
    queries = loaders.load_circo(ann)
    part = write_jsonl("p.jsonl", [{"query_id": 0, "ranking": [10]}])
    with pytest.raises(InputError, match="no line for 1 of the 2 .*query_id '1'"):
        scoring.score_circo(runfile.read_query_run(part), queries)
    extra = write_jsonl("e.jsonl", [{"query_id": q, "ranking": [10]} for q in (0, 1, 9)])
    with pytest.raises(InputError, match="run line 3: query_id '9' is not in the CIRCO"):
        scoring.score_circo(runfile.read_query_run(extra), queries)


def test_circo_ids_must_be_integers(circo_files, write_jsonl):
    ann, _ = circo_files
    run = write_jsonl("r.jsonl", [{"query_id": q, "ranking": ["a.jpg"]} for q in (0, 1)])
    with pytest.raises(InputError, match="'a.jpg' is not a COCO image id"):
        scoring.score_circo(runfile.read_query_run(run), loaders.load_circo(ann))


def test_test_splits_cannot_be_scored(write_json, write_jsonl):
    test = write_json(
        "test.json",
        [{"reference_img_id": 1, "relative_caption": "x", "shared_concept": "y", "id": 0}],
    )
    run = write_jsonl("r.jsonl", [{"query_id": 0, "ranking": [1]}])
    with pytest.raises(InputError, match="no targets.*convir eval submission --protocol circo"):
        scoring.score_circo(runfile.read_query_run(run), loaders.load_circo(test))


# ---- submissions


def test_cirr_submission_format(cirr_files, write_jsonl):
    captions, _ = cirr_files
    m = CIRR_MEMBERS  # dev-1 .. dev-6; query 1: reference dev-1, query 2: reference dev-3
    run = write_jsonl(
        "r.jsonl",
        [
            {"query_id": 1, "ranking": [m[0], m[2], m[1], "dev-9-0-img0", m[5], m[4], m[3]]},
            {"query_id": 2, "ranking": [m[3], m[4], m[2], m[5], m[0]]},
        ],
    )
    recall, subset = submission.cirr_submission(
        runfile.read_query_run(run), loaders.load_cirr_captions(captions), top=4
    )
    assert recall == {
        "version": "rc2",
        "metric": "recall",
        "1": [m[2], m[1], "dev-9-0-img0", m[5]],  # reference dropped, then top 4
        "2": [m[3], m[4], m[5], m[0]],
    }
    assert subset == {
        "version": "rc2",
        "metric": "recall_subset",
        "1": [m[2], m[1], m[5]],  # img_set members only
        "2": [m[3], m[4], m[5]],
    }


def test_cirr_subset_needs_three_ranked_members(cirr_files, write_jsonl):
    captions, _ = cirr_files
    run = write_jsonl(
        "r.jsonl",
        [
            {"query_id": 1, "ranking": CIRR_MEMBERS[::-1]},
            {"query_id": 2, "ranking": ["dev-4-0-img0", "dev-9-0-img0"]},
        ],
    )
    with pytest.raises(InputError, match="pairid 2: the ranking orders 1 of the 5 img_set"):
        submission.cirr_submission(
            runfile.read_query_run(run), loaders.load_cirr_captions(captions)
        )


def test_circo_submission_format(write_jsonl, tmp_path):
    rows = [{"query_id": q, "ranking": [str(i) for i in range(60)]} for q in (1, 0)]
    sub = submission.circo_submission(runfile.read_query_run(write_jsonl("r.jsonl", rows)))
    assert list(sub) == ["0", "1"] and sub["0"] == list(range(50))
    out = submission.write_json(tmp_path / "sub" / "circo.json", sub)
    assert json.loads(out.read_text()) == sub
    gap = write_jsonl("g.jsonl", [{"query_id": q, "ranking": []} for q in (0, 2)])
    with pytest.raises(InputError, match="exactly 0..1"):
        submission.circo_submission(runfile.read_query_run(gap))


def test_ranks_are_float_arrays_with_inf(chatir_run):
    ranks = runfile.read_chatir_run(chatir_run).ranks()
    assert ranks.dtype == np.float64 and np.isinf(ranks).sum() == 2
