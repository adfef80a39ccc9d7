"""``convir chat`` through the real entry point, with piped stdin (a small testbed gallery)."""

import re
import subprocess
import sys

import pytest
from PIL import Image

GALLERY = ("--gallery-size", "200", "--no-generate")
RESULT_LINE = re.compile(r"^\s+(\d+)  (\d{7})  (\S+)  (-?\d+\.\d{3})$", re.M)


def chat(*args: object, stdin: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``convir chat ARGS`` with ``stdin`` piped in (tests/convir_cli.py's runner, plus input)."""
    return subprocess.run(
        [sys.executable, "-m", "convir.cli", "chat", *GALLERY, *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def two_turns(tmp_path_factory):
    sheet = tmp_path_factory.mktemp("chat") / "top.png"
    proc = chat("--top", 3, "--show", sheet, stdin="a red circle\n\n   \ngray\n")
    return proc, sheet


def test_two_turns_show_results_and_questions(two_turns):
    proc, _ = two_turns
    assert proc.returncode == 0, proc.stderr
    results = RESULT_LINE.findall(proc.stdout)
    assert [int(r[0]) for r in results] == [1, 2, 3, 1, 2, 3]  # --top 3, two turns
    assert all(item == path for _, item, path, _ in results)  # the testbed's paths are its ids
    scores = [float(r[3]) for r in results[:3]]
    assert scores == sorted(scores, reverse=True)
    questions = re.findall(r"^convir> (.+\?)$", proc.stdout, re.M)
    assert len(questions) == 2 and questions[0] != questions[1]  # the answered one is not repeated
    assert proc.stdout.count("you> ") == 2  # blank lines are not messages
    # the tool nodes stream to stderr, one line per turn; the answer resumes the question
    assert "  [refine_query] [retrieve] [ask_clarification]\n" in proc.stderr
    assert "  [await_answer] [refine_query] [retrieve] [ask_clarification]\n" in proc.stderr


def test_show_writes_a_contact_sheet_png(two_turns):
    proc, sheet = two_turns
    assert proc.returncode == 0, proc.stderr
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(sheet) as im:
        im.load()
        assert im.format == "PNG"
        assert im.width > im.height > 0  # 10 results in 2 rows of 5
    assert not list(sheet.parent.glob(".*tmp"))  # no temp file left behind


def test_sqlite_thread_continues_across_runs(tmp_path):
    db = f"sqlite:{tmp_path / 'chats.db'}"
    first = chat("--checkpoint", db, "--thread", "t1", stdin="a red circle\ngray\n")
    assert first.returncode == 0, first.stderr
    asked = re.findall(r"^convir> (.+\?)$", first.stdout, re.M)

    second = chat("--checkpoint", db, "--thread", "t1", stdin="/transcript\n/quit\nignored\n")
    assert second.returncode == 0, second.stderr
    assert "continuing thread t1 (2 messages so far)" in second.stderr
    assert f"convir> {asked[-1]}" in second.stdout  # the pending question is shown again
    assert "user: 'a red circle'" in second.stdout
    assert f"{asked[0]!r} -> 'gray'" in second.stdout  # the first run's answered question
    assert "ignored" not in second.stdout  # /quit ended the chat

    # a message answers the saved question instead of starting a new conversation
    third = chat("--checkpoint", db, "--thread", "t1", stdin="red circle\n/transcript\n")
    assert third.returncode == 0, third.stderr
    assert f"{asked[-1]!r} -> 'red circle'" in third.stdout
    assert third.stdout.count("| user: ") == 1  # still the one opening message


def test_bad_reference_is_one_error_line():
    proc = chat("--reference", "no-such-image", stdin="make it blue\n")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "'no-such-image' is not in the gallery" in errors[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strategy", "stitch"), "--strategy stitch needs --reference"),
        (("--top", "0"), "--top must be between 1 and 100"),
        (("--show", "top.jpg"), "give a .png file name"),
        (("--checkpoint", "redis://x"), "use memory, sqlite:PATH or postgres://"),
    ],
)
def test_bad_options_fail_before_loading_models(args, message):
    proc = chat(*args, stdin="", timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "building the testbed gallery" not in proc.stderr


def test_contact_sheet_checks_its_inputs(tmp_path):
    from convir.contact_sheet import contact_sheet
    from convir.errors import InputError

    images = [Image.new("RGB", (40, 20), c) for c in ("red", "blue", "green")]
    out = contact_sheet(
        images,
        ["a", "b", "a very long label that cannot fit"],
        tmp_path / "s.png",
        columns=2,
        cell=32,
    )
    with Image.open(out) as im:
        assert im.size == (2 * (32 + 8), 2 * (32 + 14 + 8))
        assert im.getpixel((4 + 16, 4 + 16))[0] > 200  # the first image, red, is in the first cell
    with pytest.raises(InputError, match="3 images but 2 labels"):
        contact_sheet(images, ["a", "b"], tmp_path / "t.png")
    with pytest.raises(InputError, match="no images"):
        contact_sheet([], [], tmp_path / "t.png")
    assert not (tmp_path / "t.png").exists()


def test_a_number_answers_with_that_option():
    from convir.chat import _chosen_option

    assert _chosen_option("2", ["yes", "no"]) == "no"
    assert _chosen_option("3", ["yes", "no"]) == "3"  # out of range: the text as typed
    assert _chosen_option("blue", ["yes", "no"]) == "blue"
    proc = chat("--top", 1, stdin="a red circle\n1\n/transcript\n")
    assert proc.returncode == 0, proc.stderr
    numbered = re.search(r"^\s+1\) (.+?)  2\) ", proc.stdout, re.M)
    assert numbered, proc.stdout
    assert f"-> {numbered.group(1)!r}" in proc.stdout  # the answer recorded is the option


def test_why_explains_a_result_by_rank_or_id():
    proc = chat("--top", 2, stdin="a red circle\n1\n/why 2\n/why nope\n")
    assert proc.returncode == 0, proc.stderr
    second = re.findall(r"^\s+2  (\S+)  \S+  (-?[\d.]+)$", proc.stdout, re.M)[-1]
    head = re.search(rf"^  {second[0]}: #2, score (-?[\d.]+)", proc.stdout, re.M)
    assert head and head.group(1) == second[1], proc.stdout
    terms = [float(v) for v in re.findall(r"^\s+([+-][\d.]+)  ", proc.stdout, re.M)]
    assert abs(sum(terms) - float(second[1])) < 2e-3 and len(terms) >= 2  # similarity + answer
    assert "no gallery image 'nope'" in proc.stderr


def test_chat_runs_our_stitch_form_when_asked():
    from convir.state import STITCH_VARIANTS, stitch_form

    assert stitch_form("token-ot") == STITCH_VARIANTS["token-ot"]
    stdin = "make it blue\n/transcript\n"
    proc = chat("--stitch", "token-ot", "--reference", "0000004", "--top", 1, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert "refine_query (1 target descriptions by rules)" in proc.stdout
    assert "ot_rerank: top 50 rescored" in proc.stdout  # token x patch OT, not the set score
    bad = chat("--stitch", "magic", stdin="")
    assert bad.returncode == 2 and "--stitch must be one of published, token-ot" in bad.stderr
