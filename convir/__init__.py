"""convir: conversational image retrieval.

Importing the package is cheap: torch, open_clip, FAISS and friends are imported
only inside the backends that need them.
"""

__version__ = "0.1.0"
