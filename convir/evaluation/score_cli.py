"""``convir eval score``, ``convir eval submission`` and ``convir data inspect``: score run
files, write server submissions, inspect benchmark files. Heavy work lives in ``runfile`` /
``scoring`` / ``submission`` / ``loaders``, imported when a command runs."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from convir.errors import InputError
from convir.evaluation.apps import data_app, eval_app
from convir.evaluation.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

if TYPE_CHECKING:
    from convir.evaluation.scoring import ChatIRScores


class ScoringProtocol(StrEnum):
    chatir = "chatir"
    circo = "circo"
    cirr = "cirr"
    fashioniq = "fashioniq"


class ServerProtocol(StrEnum):
    cirr = "cirr"
    circo = "circo"


ANNOTATIONS_HINT = {
    "circo": "CIRCO's val.json",
    "cirr": "CIRR's captions file cap.rc2.<split>.json",
    "fashioniq": "FashionIQ's captions file cap.<category>.<split>.json",
}


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def _cell(value: float, ci: list[float] | None) -> str:
    return f"{value:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci is not None else "")


def _print_chatir(s: ChatIRScores, recall_at_1: list[float], ci: dict | None) -> None:
    typer.echo(f"ChatIR protocol: {s.dialogues} dialogues, {len(s.hits_at_k)} rounds, K={s.k}")
    if ci is not None:
        typer.echo(
            f"[lo, hi]: 95% bootstrap interval over dialogues ({ci['resamples']} resamples, "
            f"seed {ci['seed']})"
        )
    w = 25 if ci is not None else 9
    typer.echo(f"{'round':>5}  {f'Hits@{s.k}':>{w}}  {f'Recall@{s.k}':>9}  {'Recall@1':>{w}}")
    for t, (h, r) in enumerate(zip(s.hits_at_k, s.recall_at_k, strict=True)):
        hit_ci = ci["hits_at_k"][t] if ci else None
        first_ci = ci["recall_at_1"][t] if ci else None
        typer.echo(
            f"{t:>5}  {_cell(h, hit_ci):>{w}}  {r:>9.4f}  {_cell(recall_at_1[t], first_ci):>{w}}"
        )
    typer.echo(
        f"BRI {_cell(s.bri, ci['bri'] if ci else None)} (best log rank integral, lower is better)"
    )


def _print_query_scores(protocol: str, results: dict[str, dict[int, float]]) -> None:
    names = {"map_at": "mAP", "recall_at": "Recall", "recall_subset_at": "Recall_subset"}
    typer.echo(f"{protocol} protocol")
    for key, values in results.items():
        typer.echo("  ".join(f"{names[key]}@{k} {v:.4f}" for k, v in values.items()))


@eval_app.command("score")
def score_command(
    protocol: ScoringProtocol = typer.Option(..., "--protocol", help="Which benchmark's metrics."),
    run: Path = typer.Option(..., "--run", help="Run file (.jsonl), one JSON line per query."),
    annotations: Path | None = typer.Option(
        None, "--annotations", help="Ground truth: CIRCO val.json / CIRR or FashionIQ captions."
    ),
    search_space: Path | None = typer.Option(
        None,
        "--search-space",
        help="Gallery file; ids outside it are errors (chatir: also BRI's rank for misses).",
    ),
    k: int | None = typer.Option(None, "--k", help="K of Hits@K/Recall@K (chatir; default 10)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    resamples: int = typer.Option(
        DEFAULT_RESAMPLES,
        "--resamples",
        help="chatir: bootstrap resamples of the dialogues behind each 95% interval (0: none).",
    ),
    bootstrap_seed: int = typer.Option(
        DEFAULT_SEED, "--bootstrap-seed", help="chatir: seed of the bootstrap resamples."
    ),
) -> None:
    """Score a run file: ChatIR Hits@K/Recall@K/BRI per round (Hits@K, Recall@1 and BRI with
    95% bootstrap intervals), CIRCO mAP@K, CIRR Recall@K and Recall_subset@K, FashionIQ
    R@10/R@50. Metrics are fractions in [0, 1]."""
    from convir.evaluation import loaders, metrics, runfile, scoring, stats

    stats.check_resamples(resamples)

    space = loaders.load_search_space(search_space) if search_space is not None else None
    if protocol is ScoringProtocol.chatir:
        if annotations is not None:
            raise InputError(
                "--annotations is not used by --protocol chatir (targets are in the run)"
            )
        k = 10 if k is None else k
        if k < 1:
            raise InputError(f"--k must be >= 1, got {k}")
        chatir_run = runfile.read_chatir_run(run, space)
        scores = scoring.score_chatir(chatir_run, k, len(space) if space else None)
        ranks = chatir_run.ranks()
        recall_at_1 = metrics.recall_at_k_per_round(ranks, 1).tolist()
        ci = None
        if resamples:
            ci = stats.intervals(ranks, k, scores.missing_rank, resamples, bootstrap_seed)
            ci |= {"resamples": resamples, "seed": bootstrap_seed}
        if scores.not_found and space is None:
            _warn(
                f"{scores.not_found} (dialogue, round) targets were not in their rankings; BRI "
                f"ranks them {int(scores.missing_rank)} (the longest ranking): pass "
                "--search-space for the full-gallery rank"
            )
        if as_json:
            extra: dict = {"recall_at_1": recall_at_1}
            if ci is not None:
                extra["ci"] = ci
            typer.echo(json.dumps(scores.as_json() | extra))
        else:
            _print_chatir(scores, recall_at_1, ci)
        return

    if k is not None:
        raise InputError(
            f"--k applies to --protocol chatir only; {protocol.value} reports its fixed K list"
        )
    if annotations is None:
        raise InputError(
            f"--protocol {protocol.value} needs --annotations: pass "
            f"{ANNOTATIONS_HINT[protocol.value]}"
        )
    query_run = runfile.read_query_run(run, space)
    if protocol is ScoringProtocol.circo:
        result = scoring.score_circo(query_run, loaders.load_circo(annotations))
    elif protocol is ScoringProtocol.cirr:
        result = scoring.score_cirr(query_run, loaders.load_cirr_captions(annotations))
    else:
        result = scoring.score_fashioniq(query_run, loaders.load_fashioniq_captions(annotations))
    if result.short_misses:
        _warn(
            f"{result.short_misses} queries missed with rankings shorter than the largest K; "
            "they count as misses: write longer rankings if that is not intended"
        )
    if result.subset_undetermined:
        _warn(
            f"{result.subset_undetermined} queries rank neither the target nor every img_set "
            "member; Recall_subset counts them as misses: include all img_set members"
        )
    if as_json:
        typer.echo(json.dumps(result.as_json()))
    else:
        _print_query_scores(protocol.value, result.as_json())


@eval_app.command("submission")
def submission_command(
    protocol: ServerProtocol = typer.Option(..., "--protocol", help="cirr or circo test server."),
    run: Path = typer.Option(..., "--run", help="Run file (.jsonl) on the test split."),
    out: Path = typer.Option(..., "--out", help="Submission JSON to write."),
    annotations: Path | None = typer.Option(
        None,
        "--annotations",
        help="cirr: cap.rc2.test1.json (required); circo: test.json (checks coverage).",
    ),
    out_subset: Path | None = typer.Option(
        None, "--out-subset", help="cirr: the Recall_subset file (default: <out>_subset.json)."
    ),
) -> None:
    """Write the official test-server file(s): CIRR recall + recall_subset, or CIRCO top-50."""
    from convir.evaluation import loaders, runfile, submission

    query_run = runfile.read_query_run(run)
    if protocol is ServerProtocol.cirr:
        if annotations is None:
            raise InputError(
                "--protocol cirr needs --annotations cap.rc2.test1.json "
                "(the reference and img_set of each pairid)"
            )
        recall, subset = submission.cirr_submission(
            query_run, loaders.load_cirr_captions(annotations)
        )
        subset_path = out_subset or out.with_name(f"{out.stem}_subset{out.suffix or '.json'}")
        submission.write_json(out, recall)
        submission.write_json(subset_path, subset)
        typer.echo(f"wrote {out} (recall) and {subset_path} (recall_subset)")
        return
    if out_subset is not None:
        raise InputError("--out-subset is for --protocol cirr only")
    queries = loaders.load_circo(annotations) if annotations is not None else None
    top50 = submission.circo_submission(query_run, queries)
    short = sum(len(v) < 50 for v in top50.values())
    if short:
        _warn(f"{short} queries have fewer than 50 ranked ids; the server expects the top 50")
    submission.write_json(out, top50)
    typer.echo(f"wrote {out} ({len(top50)} queries)")


@data_app.command("inspect")
def inspect_command(
    path: Path = typer.Argument(..., help="A benchmark JSON file (annotations, split, dialogues)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Detect a benchmark file's format from its content, validate it, and summarise it."""
    from convir.evaluation.loaders import inspect_file

    summary = inspect_file(path)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for key, value in summary.items():
            typer.echo(f"{key}: {value}")


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def _p(p: float) -> str:
    return f"{p:.4f}" if p >= 1e-4 else "<1e-4"


def _compare_row(e: dict) -> str:
    mark = "*" if e["ci"][0] > 0 or e["ci"][1] < 0 else " "
    return (
        f"{e['a']:>6.3f} {e['b']:>6.3f} {_signed(e['diff']):>7} "
        f"[{_signed(e['ci'][0])}, {_signed(e['ci'][1])}]{mark} {_p(e['p']):>6}"
    )


def _print_comparison(c: dict) -> None:
    m = c["method"]
    typer.echo(f"A: {c['a']}")
    typer.echo(f"B: {c['b']}")
    typer.echo(
        f"{c['dialogues']} dialogues, paired. B-A with its 95% paired-bootstrap interval "
        f"({m['resamples']} resamples, seed {m['seed']}; * the interval excludes 0); "
        "p: exact McNemar (Hits, Recall@1), sign-flip test (BRI)"
    )
    hits = f"hits_at_{c['k']}"
    head = f"{'A':>6} {'B':>6} {'B-A':>7} {'[lo, hi]':^16}  {'p':>6}"
    typer.echo(f"{'':>5}  {'Hits@' + str(c['k']):^46}   {'Recall@1':^46}")
    typer.echo(f"{'round':>5}  {head}   {head}")
    for row in c["rounds"]:
        typer.echo(
            f"{row['round']:>5}  {_compare_row(row[hits])}   {_compare_row(row['recall_at_1'])}"
        )
    typer.echo(f"{'BRI':>5}  {_compare_row(c['bri'])}   (lower is better)")


@eval_app.command("compare")
def compare_command(
    run_a: Path = typer.Argument(..., help="Run file A (ChatIR protocol, .jsonl)."),
    run_b: Path = typer.Argument(..., help="Run file B, over the same dialogues."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    search_space: Path | None = typer.Option(
        None, "--search-space", help="Gallery file: ids outside it are errors; BRI's miss rank."
    ),
    k: int = typer.Option(10, "--k", help="K of Hits@K."),
    resamples: int = typer.Option(
        DEFAULT_RESAMPLES, "--resamples", help="Bootstrap resamples (and sign flips for BRI)."
    ),
    bootstrap_seed: int = typer.Option(
        DEFAULT_SEED, "--bootstrap-seed", help="Seed of the resamples and sign flips."
    ),
    missing_rank: int | None = typer.Option(
        None,
        "--missing-rank",
        help="BRI's rank for a target absent from its ranking (default: the --search-space "
        "size, else the longest ranking); `convir eval run` uses the gallery size.",
    ),
) -> None:
    """Paired comparison of two runs on the same dialogues: per round Hits@K and Recall@1 of
    A and B, the difference B - A with its 95% paired-bootstrap interval and an exact
    McNemar p-value; BRI likewise (sign-flip test). Any tool's ChatIR run files work."""
    from convir.evaluation.compare import compare_files

    if k < 1:
        raise InputError(f"--k must be >= 1, got {k}")
    if missing_rank is not None and missing_rank < 1:
        raise InputError(f"--missing-rank must be >= 1, got {missing_rank}")
    result = compare_files(
        run_a,
        run_b,
        k=k,
        search_space=search_space,
        resamples=resamples,
        seed=bootstrap_seed,
        missing_rank=None if missing_rank is None else float(missing_rank),
    )
    lost = result["not_found"]
    if (lost["a"] or lost["b"]) and search_space is None and missing_rank is None:
        _warn(
            f"{lost['a']} (A) and {lost['b']} (B) (dialogue, round) targets were not in their "
            f"rankings; BRI ranks them {int(result['method']['missing_rank'])} (the longest "
            "ranking): pass --missing-rank GALLERY_SIZE (as eval run does) or --search-space"
        )
    if as_json:
        typer.echo(json.dumps(result))
    else:
        _print_comparison(result)
