"""Input made to hurt: decompression bombs, phone-camera JPEGs (MPO), C1 control
characters, ids long enough to flood a reply, and idempotency keys someone else guessed.
None may produce a 500, a huge reply, or someone else's session."""

import io
import struct
import zlib

import pytest

pytest.importorskip("fastapi")

from PIL import Image  # noqa: E402


def bomb_png(width: int, height: int) -> bytes:
    """A PNG of a header only: it claims ``width`` x ``height`` pixels in 45 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def bomb_gif(width: int, height: int) -> bytes:
    size = struct.pack("<HH", width, height)
    return b"GIF89a" + size + b"\x00\x00\x00," + b"\x00" * 4 + size + b"\x00\x02\x02D\x01\x00;"


def bomb_bmp(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
    return struct.pack("<2sIHHI", b"BM", 54, 0, 0, 54) + info


@pytest.mark.parametrize(
    "name,data,pixels",
    [
        ("png", bomb_png(100_000, 100_000), "10,000,000,000"),
        ("gif", bomb_gif(65_535, 65_535), "4,294,836,225"),
        ("bmp", bomb_bmp(60_000, 60_000), "3,600,000,000"),
    ],
)
def test_a_decompression_bomb_is_413_with_a_reason(client, name, data, pixels):
    reply = client.post("/uploads", files={"file": (f"bomb.{name}", data, "image/png")})
    assert reply.status_code == 413, reply.text
    assert f"{pixels} pixels" in reply.json()["detail"] and "smaller" in reply.json()["detail"]
    assert len(data) < 100


def test_a_phone_cameras_multi_frame_jpeg_is_accepted_as_its_first_frame(client):
    first, second = Image.new("RGB", (48, 40), (200, 10, 10)), Image.new("RGB", (48, 40), "blue")
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    reply = client.post("/uploads", files={"file": ("p.jpg", buffer.getvalue(), "image/jpeg")})
    assert reply.status_code == 201, reply.text
    assert (reply.json()["width"], reply.json()["height"]) == (48, 40)
    stored = client.get(reply.json()["image_url"])
    assert stored.headers["content-type"] == "image/jpeg"
    assert stored.content == buffer.getvalue()  # the bytes as received


@pytest.mark.parametrize("char", ["\x85", "\x9b", "\x80", "\x9f", "\x07", "\x7f"])
def test_every_control_character_is_refused(client, char):
    reply = client.post("/sessions", json={"message": f"a red{char} circle"})
    assert reply.status_code == 422 and "control characters" in reply.json()["detail"]


def test_text_that_only_looks_unusual_is_fine(client):
    reply = client.post("/sessions", json={"message": "a café\ttable, ½ red\n— naïve «circle»"})
    assert reply.status_code == 201


def test_errors_echo_at_most_a_short_prefix_of_an_id(client):
    sid = client.post("/sessions", json={"message": "a red circle"}).json()["session_id"]
    long_id = "x" * 60_000
    for path in (f"/images/{long_id}", f"/sessions/{sid}/why/{long_id}"):
        reply = client.get(path)
        assert reply.status_code == 404 and len(reply.content) < 400
        assert "60,000 characters" in reply.json()["detail"]
    reply = client.post("/sessions", json={"message": "bluer", "reference_id": "y" * 999})
    assert reply.status_code == 400 and len(reply.content) < 400


def test_a_keyed_session_id_cannot_be_computed_from_the_key(make_client, tmp_path):
    import hashlib

    spec = f"sqlite:{tmp_path / 's.db'}"
    from convir.agent import checkpointer

    first = make_client(checkpoint=checkpointer(spec))
    opened = first.post(
        "/sessions", json={"message": "a red circle"}, headers={"Idempotency-Key": "guessable"}
    ).json()["session_id"]
    assert opened != "k" + hashlib.sha256(b"guessable").hexdigest()[:40]
    # the same store (a restart, another worker) derives the same id; another store does not
    again = make_client(checkpoint=checkpointer(spec))
    retry = again.post(
        "/sessions", json={"message": "a red circle"}, headers={"Idempotency-Key": "guessable"}
    )
    assert retry.status_code == 201 and retry.json()["session_id"] == opened
    elsewhere = make_client(checkpoint=checkpointer(f"sqlite:{tmp_path / 'other.db'}"))
    other = elsewhere.post(
        "/sessions", json={"message": "a red circle"}, headers={"Idempotency-Key": "guessable"}
    )
    assert other.json()["session_id"] != opened
