"""A small hand-written caption dataset (40 items, three free-form captions each) for the
captions benchmark's tests: caption 1 opens, captions 2-3 are the gallery's text."""

import json
from pathlib import Path

ITEMS: dict[str, list[str]] = {
    "dog-beach": [
        "A brown dog runs on a sandy beach.",
        "A dog is running along the shore near the waves.",
        "The dog has a red collar around its neck.",
    ],
    "cat-sofa": [
        "A gray cat sleeps on a green sofa.",
        "A cat is curled up on the cushions of a couch.",
        "The cat lies next to a striped pillow.",
    ],
    "bus-street": [
        "A red double-decker bus drives down a city street.",
        "A bus with two floors passes tall buildings.",
        "People wait at a bus stop on the sidewalk.",
    ],
    "pizza-table": [
        "A pepperoni pizza sits on a wooden table.",
        "A round pizza is cut into eight slices.",
        "A glass of cola stands beside the pizza tray.",
    ],
    "surfer-wave": [
        "A surfer rides a large wave in the ocean.",
        "A man in a black wetsuit balances on a white surfboard.",
        "Spray flies up behind the surfer as the wave breaks.",
    ],
    "horse-field": [
        "A white horse grazes in a green field.",
        "A horse eats grass near a wooden fence.",
        "Hills and trees can be seen behind the horse.",
    ],
    "kitchen-sink": [
        "A clean kitchen with a steel sink and white cabinets.",
        "Pots hang above the kitchen counter.",
        "A window over the sink lets in sunlight.",
    ],
    "snow-skier": [
        "A skier in a yellow jacket goes down a snowy slope.",
        "A person on skis races through fresh snow.",
        "Pine trees line the ski run.",
    ],
    "train-station": [
        "A blue train stops at a busy station.",
        "Passengers board a train from the platform.",
        "The train has its doors open under a glass roof.",
    ],
    "birthday-cake": [
        "A chocolate birthday cake with lit candles.",
        "A cake covered in chocolate frosting has five candles.",
        "Balloons float behind the cake on the table.",
    ],
    "giraffe-zoo": [
        "A tall giraffe stands next to a tree.",
        "A giraffe reaches up to eat leaves from a branch.",
        "The giraffe has brown spots and a long neck.",
    ],
    "laptop-desk": [
        "An open laptop sits on a cluttered desk.",
        "A laptop computer is next to a coffee mug and a notebook.",
        "A desk lamp shines on the keyboard.",
    ],
    "boat-lake": [
        "A small rowing boat floats on a calm lake.",
        "A wooden boat is tied to a dock.",
        "Mountains are reflected in the still water.",
    ],
    "child-bike": [
        "A little girl rides a pink bicycle in a park.",
        "A child on a bike wears a purple helmet.",
        "The girl pedals along a paved path.",
    ],
    "elephant-river": [
        "An elephant sprays water in a muddy river.",
        "A large gray elephant bathes in the river.",
        "The elephant lifts its trunk over its head.",
    ],
    "tennis-player": [
        "A tennis player swings a racket at the ball.",
        "A woman in a white skirt plays tennis on a clay court.",
        "The player jumps to hit a forehand.",
    ],
    "sheep-hill": [
        "A flock of sheep grazes on a grassy hill.",
        "Many white sheep stand together on a slope.",
        "A stone wall runs across the hillside.",
    ],
    "clock-tower": [
        "A tall clock tower rises above the town square.",
        "A stone tower has a large clock face near its top.",
        "The clock shows ten past three.",
    ],
    "bathroom-mirror": [
        "A bathroom with a large mirror over the sink.",
        "A white toilet stands beside a bathtub.",
        "Blue tiles cover the bathroom walls.",
    ],
    "airplane-runway": [
        "A passenger airplane takes off from a runway.",
        "A large jet lifts into a cloudy sky.",
        "The plane's landing gear is still down.",
    ],
    "fruit-bowl": [
        "A bowl of fresh fruit sits on a counter.",
        "Bananas, apples and oranges are piled in a bowl.",
        "A ripe banana lies on top of the apples.",
    ],
    "motorcycle-road": [
        "A black motorcycle is parked by the side of the road.",
        "A motorbike with chrome pipes stands on the gravel.",
        "A helmet hangs from the motorcycle's handlebar.",
    ],
    "kite-beach": [
        "A colorful kite flies high above the beach.",
        "A boy holds the string of a kite on the sand.",
        "The kite has a long rainbow tail.",
    ],
    "bear-forest": [
        "A brown bear walks through a dense forest.",
        "A large bear steps over a fallen log.",
        "Ferns and moss grow around the bear.",
    ],
    "soccer-game": [
        "Two teams play soccer on a green field.",
        "A player in a red shirt kicks the ball toward the goal.",
        "The goalkeeper dives to stop the shot.",
    ],
    "library-books": [
        "Tall shelves full of books in a quiet library.",
        "A reading table stands between rows of bookshelves.",
        "A ladder leans against the top shelf.",
    ],
    "couple-umbrella": [
        "A couple walks under a black umbrella in the rain.",
        "Two people share an umbrella on a wet sidewalk.",
        "Puddles reflect the street lights.",
    ],
    "firetruck-street": [
        "A red fire truck is parked in front of a fire station.",
        "A fire engine with a long ladder on its roof.",
        "Firefighters stand beside the truck.",
    ],
    "baby-crib": [
        "A baby sleeps in a white crib.",
        "A sleeping infant lies under a soft blanket.",
        "A teddy bear sits in the corner of the crib.",
    ],
    "pasta-plate": [
        "A plate of spaghetti with tomato sauce.",
        "Pasta topped with basil leaves and grated cheese.",
        "A fork rests on the edge of the plate.",
    ],
    "lighthouse-coast": [
        "A white lighthouse stands on a rocky coast.",
        "A lighthouse with a red top overlooks the sea.",
        "Waves crash against the rocks below the lighthouse.",
    ],
    "market-stall": [
        "A vendor sells vegetables at an outdoor market.",
        "Crates of tomatoes and peppers fill a market stall.",
        "Shoppers look at the produce under a canopy.",
    ],
    "zebra-savanna": [
        "Two zebras stand on a dry savanna.",
        "Zebras with black and white stripes graze on the grass.",
        "An acacia tree grows in the distance.",
    ],
    "guitar-stage": [
        "A man plays an electric guitar on stage.",
        "A guitarist performs under bright stage lights.",
        "A microphone stand is in front of the musician.",
    ],
    "bench-park": [
        "An empty wooden bench in an autumn park.",
        "Fallen orange leaves cover the ground around a bench.",
        "A lamp post stands behind the park bench.",
    ],
    "cow-barn": [
        "A black and white cow stands in front of a red barn.",
        "A dairy cow looks at the camera from a farmyard.",
        "Hay is stacked beside the barn door.",
    ],
    "sandwich-lunch": [
        "A sandwich cut in half on a paper plate.",
        "A ham and cheese sandwich with lettuce.",
        "A bag of chips sits next to the sandwich.",
    ],
    "skateboard-ramp": [
        "A skateboarder jumps off a concrete ramp.",
        "A young man does a trick on a skateboard at a skate park.",
        "The skateboard flips in the air under his feet.",
    ],
    "bridge-river": [
        "A stone bridge crosses a wide river.",
        "An old arched bridge spans the water.",
        "Boats pass under the bridge at sunset.",
    ],
    "teddy-bed": [
        "A brown teddy bear sits on a neatly made bed.",
        "A stuffed bear rests against the pillows.",
        "The bed has a blue quilt.",
    ],
}


def write_captions(path: Path) -> Path:
    """The items as a JSON-lines caption file at ``path``."""
    path.write_text("".join(json.dumps({"id": i, "captions": c}) + "\n" for i, c in ITEMS.items()))
    return path
