"""The agent as an MCP server (``convir mcp``, extra ``[mcp]``): tools a chatbot host calls
to search a gallery by conversation, and the gallery's images as resources.

``conversations`` holds the logic (no MCP import), ``server`` the tools over the official
SDK, ``cli`` the command. The package is named after the protocol; its modules import the
SDK absolutely (``mcp.server...``), which never resolves to this package.
"""
