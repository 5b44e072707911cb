"""Room names where AWS restricts what a string may hold.

LiveKit refuses no character in a room name, only length: ``LimitConfig.MaxRoomNameLength``
(livekit/livekit ``pkg/config/config.go``, checked in ``pkg/service/roomservice.go`` and at
join) defaults to 256 and is compared with Go's ``len``, so in UTF-8 bytes. A server configured
with 0 (no limit) can make names that outgrow the DynamoDB key and the overrides limits below;
nothing here shortens those. Every place a room name reaches AWS:

- **ECS tag value** (``livekit-room``): only ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``, at most 256, and
  no ``aws:`` prefix in any case. :func:`encode_room_tag` escapes every other character as
  ``=XX`` per UTF-8 byte (quoted-printable style; ``%`` is not allowed, and ``=`` itself is
  escaped as the mark), so ordinary names read as themselves and decode back exactly. When
  the escaped name exceeds 256 UTF-8 bytes, the value is the escaped prefix that fits, then
  ``=_`` and a hash: still readable and unique, no longer reversible (the exact name rides in
  the ``LAUNCHED_FOR_ROOM`` override, which DescribeTasks returns too). A character is kept
  as itself only if it is a letter, space or number both in today's Unicode and in Unicode
  3.2, so a newer Unicode on either side cannot turn a kept character into a refused one.
  Lengths are counted in UTF-8 bytes, which is never less than whatever AWS counts.
- **StopTask reason**: free text, 255 characters per ECS's API reference (botocore's model
  states no limit): :func:`bounded_text` keeps 255 UTF-8 bytes of XML characters.
- **clientToken** is a sha256-derived token and **startedBy** a constant: never the name.
- **Container environment override**: any string; all overrides together are limited to
  8192 characters of JSON, and a 256-byte name is at most 6 * 256 characters escaped.
- **DynamoDB key** ``ROOM#<name>``: a partition key holds up to 2048 UTF-8 bytes (DynamoDB's
  quotas; botocore's model does not state it, moto enforces it); 261 at LiveKit's default.
- **SQS message body**: only ``#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF``.
  :func:`sqs_safe_json` writes JSON in printable ASCII, so control characters and
  U+FFFE/U+FFFF travel as escapes; a lone surrogate cannot be sent at all (no valid UTF-8,
  no JSON parser of ours reads it back) and is refused before sending.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata

LIVEKIT_MAX_ROOM_NAME_BYTES = 256
TAG_VALUE_MAX_BYTES = 256
STOP_REASON_MAX_BYTES = 255
DYNAMODB_PARTITION_KEY_MAX_BYTES = 2048

ESCAPE_MARK = "="
HASH_MARK = "=_"  # never produced by escaping: an escape is "=" and two hex digits
_HASH_HEX_DIGITS = 32
_TAG_PUNCTUATION = frozenset("_.:/+-@")  # "=" is allowed too, but it is the escape mark
_RESERVED_HEAD = "aws"  # followed by ":", in any case: AWS's own prefix
_HEX_DIGITS = frozenset("0123456789ABCDEF")
_UNICODE_DATABASES = (unicodedata, unicodedata.ucd_3_2_0)


def encode_room_tag(room: str) -> str:
    """An ECS tag value for ``room``: the name itself where ECS allows it, escaped elsewhere
    (and the colon of a leading ``aws:``), hashed past 256 bytes."""
    pieces = [char if _kept_in_tag(char) else _escape(char) for char in room]
    if _reserved(room):
        pieces[3] = _escape(room[3])
    escaped = "".join(pieces)
    if _utf8_size(escaped) <= TAG_VALUE_MAX_BYTES:
        return escaped
    digest = hashlib.sha256(room.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX_DIGITS]
    suffix = f"{HASH_MARK}{digest}"
    budget = TAG_VALUE_MAX_BYTES - _utf8_size(suffix)
    prefix: list[str] = []
    for piece in pieces:
        budget -= _utf8_size(piece)
        if budget < 0:
            break
        prefix.append(piece)
    return "".join(prefix) + suffix


def decode_room_tag(value: str) -> str | None:
    """The room name ``value`` was encoded from; None for a hashed or malformed value."""
    if HASH_MARK in value:
        return None
    raw = bytearray()
    index = 0
    while index < len(value):
        char = value[index]
        if char == ESCAPE_MARK:
            digits = value[index + 1 : index + 3]
            if len(digits) != 2 or not set(digits) <= _HEX_DIGITS:
                return None
            raw.append(int(digits, 16))
            index += 3
        else:
            raw += char.encode("utf-8", "surrogatepass")
            index += 1
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None


def bounded_text(text: str, max_bytes: int) -> str:
    """Free text AWS stores for people (a stop reason): characters XML (and so every AWS API)
    accepts, cut at a character boundary to ``max_bytes`` of UTF-8."""
    cleaned = "".join(char if _xml_char(char) else "\ufffd" for char in text)
    return cleaned.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def sqs_safe_json(value: object) -> str:
    """JSON in printable ASCII, valid as an SQS body whatever its strings hold.

    Raises ValueError for a string with a lone surrogate: it has no UTF-8 form, and the
    consumer's JSON parser refuses its escape, so the message could only poison the queue.
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"not valid Unicode, cannot be sent to SQS: {error}") from error
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _kept_in_tag(char: str) -> bool:
    if char in _TAG_PUNCTUATION:
        return True
    return all(database.category(char)[0] in "LZN" for database in _UNICODE_DATABASES)


def _reserved(room: str) -> bool:
    """Starts with ``aws:`` in any case, also once folded the way a service might compare."""
    return room[3:4] == ":" and unicodedata.normalize("NFKC", room[:3]).casefold() == _RESERVED_HEAD


def _escape(char: str) -> str:
    return "".join(f"{ESCAPE_MARK}{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _xml_char(char: str) -> bool:
    point = ord(char)
    return (
        point in (0x9, 0xA, 0xD)
        or 0x20 <= point <= 0xD7FF
        or 0xE000 <= point <= 0xFFFD
        or 0x10000 <= point <= 0x10FFFF
    )


ROOM_KEY_MAX_BYTES = 1024
_ROOM_KEY_PREFIX_BYTES = 900


def room_key(name: str) -> str:
    """The DynamoDB key of a room: ``ROOM#<name>``, or, for a name too long for a partition key
    (LiveKit's name limit can be raised or turned off), a readable prefix plus its sha256."""
    key = "ROOM#" + name
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) <= ROOM_KEY_MAX_BYTES:
        return key
    prefix = raw[:_ROOM_KEY_PREFIX_BYTES].decode("utf-8", "ignore")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}{HASH_MARK}{digest}"
