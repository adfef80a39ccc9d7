"""The server's routes, one router per kind: sessions, images, meta."""
