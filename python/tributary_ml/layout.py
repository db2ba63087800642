"""Feast 0.67's Redis online-store layout (entity key serialization v3), encoded and decoded by hand.

See ../shared/feast-redis-layout.md. One HASH per entity and project:
key = serialized entity key + project; field = murmur3_x86_32("<view>:<feature>") LE;
`_ts:<view>` = serialized google.protobuf.Timestamp; values = serialized feast.types.Value.
The hot path of the scoring service uses these functions (no protobuf runtime needed).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import mmh3

# Feast ValueType numbers used in the entity key.
STRING = 2
INT64 = 4


def serialize_entity_key(join_keys: Mapping[str, str | int]) -> bytes:
    names = sorted(join_keys)
    out = [struct.pack("<I", len(names))]
    for n in names:
        b = n.encode()
        out.append(struct.pack("<II", STRING, len(b)))
        out.append(b)
    for n in names:
        v = join_keys[n]
        if isinstance(v, bool):
            raise TypeError("bool join keys are not supported")
        if isinstance(v, int):
            out.append(struct.pack("<IIq", INT64, 8, v))
        else:
            b = str(v).encode()
            out.append(struct.pack("<II", STRING, len(b)))
            out.append(b)
    return b"".join(out)


def redis_key(join_keys: Mapping[str, str | int], project: str) -> bytes:
    return serialize_entity_key(join_keys) + project.encode()


def feature_field(view: str, feature: str) -> bytes:
    return mmh3.hash(f"{view}:{feature}".encode(), 0, signed=False).to_bytes(4, "little")


def ts_field(view: str) -> bytes:
    return b"_ts:" + view.encode()


# --- varints -------------------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = 0
    n = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _signed64(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


# --- Timestamp -----------------------------------------------------------------------------------

def encode_timestamp(epoch_ms: int) -> bytes:
    seconds, ms = divmod(int(epoch_ms), 1000)
    nanos = ms * 1_000_000
    out = b""
    if seconds:
        out += b"\x08" + _varint(seconds)
    if nanos:
        out += b"\x10" + _varint(nanos)
    return out


def decode_timestamp(buf: bytes) -> float:
    """Seconds since the epoch (float) from a serialized google.protobuf.Timestamp."""
    seconds = nanos = 0
    i = 0
    while i < len(buf):
        tag, i = _read_varint(buf, i)
        if tag == 0x08:
            v, i = _read_varint(buf, i)
            seconds = _signed64(v)
        elif tag == 0x10:
            v, i = _read_varint(buf, i)
            nanos = _signed64(v)
        else:
            i = _skip(buf, i, tag)
    return seconds + nanos / 1e9


# --- Value ---------------------------------------------------------------------------------------
# Feast types of the contract: Int64, Float64, String (plus Int32, Float, Bool for completeness).

def encode_value(v: Any, feast_type: str) -> bytes:
    """Serialized feast.types.Value; None → empty message (Feast reads it as None)."""
    if v is None or (isinstance(v, float) and math.isnan(v) and feast_type != "Float64"):
        return b""
    if feast_type == "Int64":
        return b"\x20" + _varint(int(v))
    if feast_type == "Float64":
        return b"\x29" + struct.pack("<d", float(v))
    if feast_type == "String":
        b = str(v).encode()
        return b"\x12" + _varint(len(b)) + b
    if feast_type == "Int32":
        return b"\x18" + _varint(int(v))
    if feast_type == "Float32":
        return b"\x35" + struct.pack("<f", float(v))
    if feast_type == "Bool":
        return b"\x38" + _varint(1 if v else 0)
    raise ValueError(f"unsupported Feast type {feast_type}")


def _skip(buf: bytes, i: int, tag: int) -> int:
    wt = tag & 7
    if wt == 0:
        _, i = _read_varint(buf, i)
        return i
    if wt == 1:
        return i + 8
    if wt == 5:
        return i + 4
    if wt == 2:
        n, i = _read_varint(buf, i)
        return i + n
    raise ValueError(f"unsupported wire type {wt}")


def decode_value(buf: bytes | None) -> Any:
    """Python value of a serialized feast.types.Value; None for a missing/empty one (or null_val)."""
    if not buf:
        return None
    i = 0
    out: Any = None
    while i < len(buf):
        tag, i = _read_varint(buf, i)
        if tag == 0x20 or tag == 0x18:  # int64_val / int32_val
            v, i = _read_varint(buf, i)
            out = _signed64(v)
        elif tag == 0x29:  # double_val
            if i + 8 > len(buf):
                raise ValueError("truncated double")
            out = struct.unpack_from("<d", buf, i)[0]
            i += 8
        elif tag == 0x35:  # float_val
            if i + 4 > len(buf):
                raise ValueError("truncated float")
            out = struct.unpack_from("<f", buf, i)[0]
            i += 4
        elif tag == 0x12:  # string_val
            n, i = _read_varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated string")
            out = buf[i:i + n].decode()
            i += n
        elif tag == 0x0A:  # bytes_val
            n, i = _read_varint(buf, i)
            out = bytes(buf[i:i + n])
            i += n
        elif tag == 0x38:  # bool_val
            v, i = _read_varint(buf, i)
            out = bool(v)
        else:  # other types (lists, null_val, ...) are not in the contract: read as None
            i = _skip(buf, i, tag)
            out = None
    return out


# --- rows ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ViewLayout:
    """Precomputed fields of one feature view: what a reader asks HMGET for."""
    name: str
    features: tuple[tuple[str, str], ...]  # (feature, Feast type)

    @property
    def fields(self) -> list[bytes]:
        return [feature_field(self.name, f) for f, _ in self.features] + [ts_field(self.name)]


def row_mapping(view: str, features: Sequence[tuple[str, str]], values: Mapping[str, Any],
                event_ms: int) -> dict[bytes, bytes]:
    """HSET mapping for one row of a view: all of its features and its `_ts` together."""
    m = {feature_field(view, f): encode_value(values.get(f), t) for f, t in features}
    m[ts_field(view)] = encode_timestamp(event_ms)
    return m


def decode_row(features: Sequence[tuple[str, str]], raw: Sequence[bytes | None]) -> tuple[dict[str, Any], float | None]:
    """Values of one view from an HMGET reply in `ViewLayout.fields` order; and the event time (s)."""
    vals = {f: decode_value(b) for (f, _), b in zip(features, raw)}
    ts = raw[len(features)]
    return vals, (decode_timestamp(ts) if ts else None)


# Newest event time wins, as Feast does: write only when the stored `_ts` is older (atomic in Redis).
WRITE_IF_NEWER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local new_s = tonumber(ARGV[2])
local new_n = tonumber(ARGV[3])
if cur then
  -- decode the stored Timestamp (fields 1 and 2, varints)
  local s, n, i = 0, 0, 1
  while i <= #cur do
    local tag = string.byte(cur, i); i = i + 1
    local v, shift = 0, 1
    repeat
      local b = string.byte(cur, i); i = i + 1
      v = v + (b % 128) * shift; shift = shift * 128
    until b < 128
    if tag == 8 then s = v elseif tag == 16 then n = v end
  end
  if s > new_s or (s == new_s and n >= new_n) then return 0 end
end
local args = {}
for j = 4, #ARGV do args[#args + 1] = ARGV[j] end
redis.call('HSET', KEYS[1], unpack(args))
return 1
"""


def write_rows(client, project: str, entity: str, view: str, features: Sequence[tuple[str, str]],
               rows: Iterable[tuple[str | int, int, Mapping[str, Any]]], key_ttl_seconds: int | None = None) -> int:
    """Write rows (entity value, event ms, feature values) the way the jobs do (newest wins). Returns rows written."""
    script = client.register_script(WRITE_IF_NEWER)
    pipe = client.pipeline(transaction=False)
    n = 0
    for ent, event_ms, values in rows:
        key = redis_key({entity: ent}, project)
        m = row_mapping(view, features, values, event_ms)
        ts_f = ts_field(view)
        flat: list[bytes] = []
        for k, v in m.items():
            flat += [k, v]
        s, ms = divmod(int(event_ms), 1000)
        script(keys=[key], args=[ts_f, s, ms * 1_000_000, *flat], client=pipe)
        if key_ttl_seconds:
            pipe.expire(key, key_ttl_seconds)
        n += 1
        if n % 1000 == 0:
            pipe.execute()
    pipe.execute()
    return n
