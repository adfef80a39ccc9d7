"""How the agent reads the target's texts against what the simulated user answered (issue 24).

Runs the agent (text strategy, information-gain questions) on the captions dev set with
:class:`~convir.evaluation.users.CaptionUser` and, for every answered question, compares:

- **agreement**: the answer the agent's reader takes from the target's gallery text
  (``convir.gallery.clauses.states`` on each option's fact: a yes/no question's fact stated
  -> "yes", else "no"; a choice question: the options whose fact the text states, none ->
  "none of these") against the user's answer (its own word rule on the target's captions);
  an answer agrees when it is one the reader reads;
- **two true options**: choice questions where two or more offered options are stated by
  the target's captions (all that the user reads), i.e. options that were not alternatives.

    python benchmarks/captions_reading.py                       # dev set, 200 dialogues, seed 0
    python benchmarks/captions_reading.py --gallery-size 1000 --dialogues 100 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEV_SET = ROOT.parent / "shared" / "benchmarks" / "captions" / "cirr_vlm_captions.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=Path, default=DEV_SET)
    parser.add_argument("--text-model", default="all-MiniLM-L6-v2")
    parser.add_argument("--gallery-size", type=int, default=None)
    parser.add_argument("--dialogues", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--questions", default="info_gain")
    parser.add_argument("--index-folder", type=Path, default=Path("/tmp/convir-captions-index"))
    parser.add_argument("--show", type=int, default=15, help="disagreements to print")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from convir.evaluation.experiment import RunSpec, build_systems, local_runs
    from convir.gallery.clauses import states
    from convir.gallery.questions import NONE_OPTION
    from convir.models.refiner import split_turn

    spec = RunSpec(
        chatir=False,
        labels=("text",),
        modes=(args.questions,),
        policy="rules",
        seed=args.seed,
        gallery_size=args.gallery_size,
        dialogues=args.dialogues,
        error_rate=0.0,
        progress=False,
        annotations=args.annotations.resolve(),
        text_model=args.text_model,
        index_folder=args.index_folder,
    )
    setup, systems = build_systems(spec)
    ((label, system),) = systems.items()
    user = setup.new_user()
    for _ in local_runs(setup, {label: system}, args.rounds, 1, False):
        pass
    captions = user.captions  # type: ignore[attr-defined]
    answers = agree = choices = two_true = 0
    misses: list[str] = []
    for did in setup.dialogue_ids:
        state = system.state(did)
        target = user.target(did)
        text = setup.resources.caption_for(target) or ""
        every = captions[target][:3]
        asked = state.get("asked_options", {})
        for turn in state.get("dialogue", [])[1:]:
            question, answer = split_turn(turn)
            spec_q = asked.get(question + "?")
            if spec_q is None:
                continue
            options, facts = spec_q["options"], spec_q["facts"]
            read = [o for o, f in zip(options, facts, strict=True) if f and states(text, f)]
            if options[:2] == ["yes", "no"] and len(options) == 2:
                read = read or ["no"]
            else:
                read = read or [NONE_OPTION]
                choices += 1
                true = [f for f in facts if f and any(states(c, f) for c in every)]
                two_true += len(true) >= 2
            answers += 1
            if answer in read:
                agree += 1
            else:
                misses.append(f"{question}? user: {answer!r}, reader: {read}; text: {text!r}")
    result = {
        "answers": answers,
        "agreement": round(agree / max(1, answers), 4),
        "choice_questions": choices,
        "two_true_options": round(two_true / max(1, choices), 4),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{answers} answers: reader agrees with the user on {result['agreement']:.3f}; "
            f"{choices} choice questions, {result['two_true_options']:.3f} with two true options"
        )
        for line in random.Random(0).sample(misses, min(args.show, len(misses))):
            print("  ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
