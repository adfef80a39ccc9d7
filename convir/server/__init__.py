"""The HTTP face of the agent: a FastAPI app (``convir serve``) and a small web page.

Install with ``pip install 'convir[server]'``; ``docs/server.md`` lists the endpoints.
Nothing here imports FastAPI at package import time, so ``import convir`` stays fast.
"""
