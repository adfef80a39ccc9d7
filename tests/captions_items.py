"""A small captions-only gallery for tests: 30 items, two captions each (real English)."""

import json
from pathlib import Path

ITEMS = [
    ("dog-beach", ["a dog runs along the beach", "a brown dog playing in the sea waves"]),
    ("red-bus", ["a red double decker bus in a city street", "a bus driving past tall buildings"]),
    ("cat-sofa", ["a cat sleeping on a sofa", "a grey kitten curled up on a couch"]),
    ("pizza", ["a pizza with cheese and tomato on a plate", "a slice of pizza on a table"]),
    ("surfer", ["a man surfing a big wave", "a surfer riding the ocean on a board"]),
    ("skier", ["a skier going down a snowy slope", "a person skiing in the mountains"]),
    ("train", ["a train arriving at a station", "a commuter train on the platform"]),
    ("giraffe", ["a giraffe eating leaves from a tree", "a tall giraffe in the savanna"]),
    ("laptop", ["a laptop on a wooden desk", "an open computer next to a coffee mug"]),
    ("kite", ["children flying a kite in a park", "a colorful kite in the blue sky"]),
    ("elephant", ["an elephant bathing in a river", "a large elephant spraying water"]),
    ("boat", ["a sailboat on a calm lake", "a small boat with a white sail"]),
    ("clock", ["a clock tower in the town square", "an old clock on a stone tower"]),
    ("horse", ["a woman riding a horse in a field", "a rider on a brown horse"]),
    (
        "kitchen",
        ["a clean kitchen with a stove and a fridge", "a modern kitchen with white cabinets"],
    ),
    ("tennis", ["a tennis player hitting a ball", "a woman swinging a racket on a court"]),
    ("bananas", ["a bunch of ripe bananas", "yellow bananas on a market stall"]),
    (
        "airplane",
        ["a jet airplane taking off from a runway", "a plane in the sky above the airport"],
    ),
    ("bicycle", ["a bicycle leaning against a wall", "a parked bike on the sidewalk"]),
    ("teddy", ["a teddy bear sitting on a bed", "a stuffed toy bear on a pillow"]),
    ("umbrella", ["people walking with umbrellas in the rain", "a black umbrella on a wet street"]),
    ("cake", ["a birthday cake with candles", "a chocolate cake on a party table"]),
    ("zebra", ["two zebras grazing in the grass", "zebras standing together on a plain"]),
    ("toilet", ["a white toilet in a small bathroom", "a bathroom with a sink and a toilet"]),
    ("pizza-oven", ["a chef putting bread into a brick oven", "a baker working at an oven"]),
    ("skateboard", ["a boy doing a trick on a skateboard", "a skateboarder jumping on a ramp"]),
    ("fire-hydrant", ["a yellow fire hydrant on the curb", "a hydrant next to the road"]),
    ("sheep", ["a flock of sheep on a green hill", "white sheep grazing in a meadow"]),
    ("frisbee", ["a man throwing a frisbee to his dog", "a dog catching a frisbee in the air"]),
    ("bed", ["a hotel room with a large bed", "a neatly made bed with white sheets"]),
]


def write_items(path: Path, items=ITEMS) -> Path:
    """Write ``items`` as a captions-only JSON-lines file (every third with a ``path``)."""
    with open(path, "w", encoding="utf-8") as f:
        for i, (key, captions) in enumerate(items):
            extra = {"path": f"img/{key}.jpg"} if i % 3 == 0 else {}
            f.write(json.dumps({"id": key, "captions": captions, **extra}) + "\n")
    return path
