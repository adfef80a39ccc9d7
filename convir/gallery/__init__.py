"""The gallery layer: one gallery and what reads it (index, texts and models in
``resources``; the answer model; question banks; the text reader). Below the tools, above
the models and the index; it knows no world and nothing of the engine."""
