"""Craft the hostile .tpk files in this folder, each beside the valid control it was cut from.

Run ``python -m tests.hostile.make_hostile`` to regenerate them (the output is deterministic;
``tests/test_security.py`` checks the committed files still match this script). Each case
names the error class the reader must raise, a word its one-line message must contain (the
field) and the CLI exit code (3: bad artifact; 1: verification failed).

The helpers (``base_ticket``, ``split``, ``seal``, ``repack``) are shared with the tests
and the fuzz harness: they take an artifact apart and put it back with valid checksums, so
a crafted header or payload gets past the CRC and reaches the checks behind it.
"""

from __future__ import annotations

import json
import pickle
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import zstandard

from ticketpack.artifact import FORMAT_VERSION, MAGIC, PREFIX, TRAILER, encode_artifact
from ticketpack.nn.masking import MaskSpec
from ticketpack.ticket import MaskedTensor, PlainTensor, TernaryTensor, Ticket

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "expected.json"


# ---------------------------------------------------------------- a valid small artifact

def base_ticket(seed: int = 11) -> Ticket:
    """Every tensor kind and mask kind, small enough for bit-by-bit tests (~1.5 KB packed)."""
    g = np.random.default_rng(seed)
    nm = np.zeros((8, 16), np.uint8)
    for r in range(8):
        for c in range(0, 16, 4):
            nm[r, c + g.choice(4, 2, replace=False)] = 1
    return Ticket(seed=seed, config={"note": "hostile-file control"}, tensors=[
        MaskedTensor("a.weight", (48, 32), "xavier_uniform", MaskSpec.parse("binary"),
                     (g.random((48, 32)) < 0.3).astype(np.uint8),
                     np.linspace(0.5, 1.5, 48).astype(np.float16)),
        MaskedTensor("b.weight", (8, 12), "signed_constant_he", MaskSpec.parse("multibit:4"),
                     g.integers(0, 4, (8, 12), dtype=np.uint8), np.array(0.75, np.float16)),
        MaskedTensor("c.weight", (8, 16), "he_uniform", MaskSpec.parse("nm:2:4"), nm, None),
        TernaryTensor("d.weight", g.integers(-1, 2, (16, 10)).astype(np.int8),
                      np.linspace(0.1, 0.2, 16).astype(np.float16)),
        PlainTensor("gain", np.array([1.0, -2.5, 3.25, 0.5], np.float16)),
    ], provenance={"ticketpack": "hostile-control"})


def control_bytes(codec: str = "zstd") -> bytes:
    return encode_artifact(base_ticket(), codec=codec, level=19 if codec == "zstd" else None)


# ---------------------------------------------------------------- take apart, put back

@dataclass
class Parts:
    version: int
    hcodec: int
    flags: int
    header: dict
    payload: bytes


def split(data: bytes) -> Parts:
    """The prefix fields, the header (decompressed, parsed) and the payload of valid bytes."""
    _, version, hcodec, flags, stored, raw, plen = PREFIX.unpack_from(data)
    hbytes = data[PREFIX.size:PREFIX.size + stored]
    if hcodec == 2:
        hbytes = zstandard.ZstdDecompressor().decompress(hbytes, max_output_size=raw)
    elif hcodec == 1:
        hbytes = zlib.decompress(hbytes)
    start = PREFIX.size + stored
    return Parts(version, hcodec, flags, json.loads(hbytes), data[start:start + plen])


def header_json(header: dict | str | bytes) -> bytes:
    if isinstance(header, bytes):
        return header
    return (header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))).encode()


def seal(header: dict | str | bytes, payload: bytes, *, version: int = FORMAT_VERSION, hcodec: int = 2,
         flags: int = 0, magic: bytes = MAGIC, stored: bytes | None = None,
         raw_len: int | None = None, payload_len: int | None = None) -> bytes:
    """Assemble artifact bytes with a correct file CRC; any prefix field can be overridden."""
    raw = header_json(header)
    if stored is None:
        stored = (zstandard.ZstdCompressor(level=19).compress(raw) if hcodec == 2
                  else zlib.compress(raw, 9) if hcodec == 1 else raw)
    prefix = struct.pack("<8sHBBIIQ", magic, version, hcodec, flags, len(stored),
                         len(raw) if raw_len is None else raw_len,
                         len(payload) if payload_len is None else payload_len)
    body = prefix + stored + payload
    return body + TRAILER.pack(zlib.crc32(body))


def sections(header: dict) -> list[dict]:
    return [s for t in header["tensors"] for s in t["sections"]]


def section_blobs(parts: Parts) -> list[bytes]:
    """The stored bytes of every section, in header order."""
    return [parts.payload[s["offset"]:s["offset"] + s["length"]] for s in sections(parts.header)]


def repack(header: dict, blobs: list[bytes], **seal_args) -> bytes:
    """Lay ``blobs`` (one per section, header order) back to back, fix offsets, lengths, CRCs."""
    pos = 0
    for s, blob in zip(sections(header), blobs):
        s.update(offset=pos, length=len(blob), crc=zlib.crc32(blob))
        pos += len(blob)
    return seal(header, b"".join(blobs), **seal_args)


# ---------------------------------------------------------------- the cases

def _edit(fn: Callable[[dict], None]) -> bytes:
    """Change the control's header with ``fn`` and seal it again (valid CRCs)."""
    parts = split(control_bytes())
    fn(parts.header)
    return seal(parts.header, parts.payload)


def _replace_section(index: int, blob: bytes, **fields) -> bytes:
    parts = split(control_bytes())
    blobs = section_blobs(parts)
    blobs[index] = blob
    sections(parts.header)[index].update(fields)
    return repack(parts.header, blobs)


def _mask0(header: dict) -> dict:
    return header["tensors"][0]["sections"][0]


def zstd_bomb() -> bytes:
    # 64 MiB of zeros in ~2 KB, in place of a.weight's 192-byte mask section (raw stays 192)
    blob = zstandard.ZstdCompressor(level=19).compress(bytes(64 << 20))
    return _replace_section(0, blob, codec="zstd")


def zstd_bomb_lying_size() -> bytes:
    # the same bomb with its frame header claiming 192 content bytes (the declared raw size)
    blob = bytearray(zstandard.ZstdCompressor(level=19).compress(bytes(64 << 20)))
    assert blob[4] >> 6 == 2 and not blob[4] & 0x20  # a 4-byte content size after the window byte
    blob[6:10] = struct.pack("<I", 192)
    return _replace_section(0, bytes(blob), codec="zstd")


def zlib_bomb() -> bytes:
    blob = zlib.compress(bytes(16 << 20), 9)  # 16 MiB of zeros in ~16 KB
    return _replace_section(0, blob, codec="zlib")


def header_bomb() -> bytes:
    # a header frame that inflates to 64 MiB while the prefix declares 300 raw bytes
    parts = split(control_bytes())
    stored = zstandard.ZstdCompressor(level=19).compress(b" " * (64 << 20))
    return seal(parts.header, parts.payload, stored=stored, raw_len=300)


def huge_dims() -> bytes:
    return _edit(lambda h: h["tensors"][0].update(shape=[2**40, 2**40]))


def too_many_elements() -> bytes:
    # each dimension under the cap, the product (2^36) over the total-elements cap
    return _edit(lambda h: h["tensors"][0].update(shape=[2**18, 2**18]))


def huge_raw_size() -> bytes:
    return _edit(lambda h: _mask0(h).update(raw=2**62))


def overflowing_offset() -> bytes:
    return _edit(lambda h: _mask0(h).update(offset=2**64 - 8))


def negative_offset() -> bytes:
    return _edit(lambda h: _mask0(h).update(offset=-8))


def truncated() -> bytes:
    return control_bytes()[:-37]


def duplicate_names() -> bytes:
    return _edit(lambda h: h["tensors"][1].update(name=h["tensors"][0]["name"]))


def duplicate_json_keys() -> bytes:
    parts = split(control_bytes())
    text = json.dumps(parts.header, separators=(",", ":"))
    return seal(text.replace('"seed":11,', '"seed":11,"seed":12,', 1), parts.payload)


def future_version() -> bytes:
    parts = split(control_bytes())
    return seal(parts.header, parts.payload, version=FORMAT_VERSION + 1)


def future_flags() -> bytes:
    parts = split(control_bytes())
    return seal(parts.header, parts.payload, flags=1)


def bad_magic_pickle() -> bytes:
    # what a pickle-based checkpoint looks like: must be refused at the magic, never unpickled
    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))
    return pickle.dumps(Exploit(), protocol=4)


def bad_magic_zip() -> bytes:
    return b"PK\x03\x04" + bytes(60)  # a torch.save zip archive starts like this


def trailing_data() -> bytes:
    return control_bytes() + b"\x00" * 16


def overlapping_sections() -> bytes:
    def fn(h: dict) -> None:
        s0, s1 = h["tensors"][0]["sections"]
        s1["offset"] = s0["offset"]  # both start at 0: overlap (and a hole later)
    return _edit(fn)


def payload_hole() -> bytes:
    parts = split(control_bytes())
    first = sections(parts.header)[0]
    for s in sections(parts.header):
        s["offset"] += 0 if s is first else 4
    payload = parts.payload[:first["length"]] + b"\x00" * 4 + parts.payload[first["length"]:]
    return seal(parts.header, payload)


def header_not_json() -> bytes:
    return seal(b"\x89this is { not json", split(control_bytes()).payload)


def header_not_utf8() -> bytes:
    return seal(b'{"seed": "\xff\xfe"}', split(control_bytes()).payload)


def deeply_nested_json() -> bytes:
    depth = 200_000
    parts = split(control_bytes())
    text = json.dumps(parts.header, separators=(",", ":"))
    nested = "[" * depth + "]" * depth
    return seal(text.replace('"note":"hostile-file control"', f'"note":{nested}', 1), parts.payload)


def long_integer() -> bytes:
    parts = split(control_bytes())
    text = json.dumps(parts.header, separators=(",", ":"))
    return seal(text.replace('"seed":11', '"seed":' + "9" * 5000, 1), parts.payload)


def nan_in_header() -> bytes:
    parts = split(control_bytes())
    text = json.dumps(parts.header, separators=(",", ":"))
    return seal(text.replace('"seed":11', '"seed":NaN', 1), parts.payload)


def wrong_type_seed() -> bytes:
    return _edit(lambda h: h.update(seed="11"))


def wrong_type_dim() -> bytes:
    return _edit(lambda h: h["tensors"][0].update(shape=[48.0, 32]))


def wrong_type_offset() -> bytes:
    return _edit(lambda h: _mask0(h).update(offset=True))


def wrong_type_tensors() -> bytes:
    return _edit(lambda h: h.update(tensors={"a.weight": 1}))


def lone_surrogate_name() -> bytes:
    parts = split(control_bytes())
    text = json.dumps(parts.header, separators=(",", ":"))
    return seal(text.replace('"name":"gain"', '"name":"g\\ud800"', 1), parts.payload)


def unknown_encoding() -> bytes:
    return _edit(lambda h: _mask0(h).update(enc="pickle"))


def unknown_rng() -> bytes:
    return _edit(lambda h: h.update(rng="mt19937/unknown"))


def rank_too_high() -> bytes:
    return _edit(lambda h: h["tensors"][4].update(shape=[1] * 9))


def too_many_tensors() -> bytes:
    return _edit(lambda h: h.update(tensors=[0] * 100_001))


def header_too_large() -> bytes:
    parts = split(control_bytes())
    return seal(parts.header, parts.payload, raw_len=2**32 - 1)


def bad_checksum() -> bytes:
    data = bytearray(control_bytes())
    data[len(data) - 40] ^= 0x10  # one bit in the payload; the file CRC is left as it was
    return bytes(data)


def bad_section_checksum() -> bytes:
    return _edit(lambda h: _mask0(h).update(crc=(_mask0(h)["crc"] + 1) % 2**32))


def corrupt_zstd_section() -> bytes:
    return _replace_section(0, b"\x28\xb5\x2f\xfd" + bytes(range(40)), codec="zstd")


def invalid_trits() -> bytes:
    # d.weight's trits with a byte no 5 trits can make (valid CRCs)
    parts = split(control_bytes("zlib"))
    blobs = section_blobs(parts)
    i = next(i for i, s in enumerate(sections(parts.header)) if s["role"] == "trits")
    raw = bytearray(zlib.decompress(blobs[i]))
    raw[-1] = 243  # 160 trits fill 32 bytes exactly; 243 is not a valid 5-trit byte
    blobs[i] = zlib.compress(bytes(raw), 9)
    return repack(parts.header, blobs)


def nm_pattern_lie() -> bytes:
    # c.weight says nm:2:4 but one group keeps 3; stored as plain bits, weights hash correct
    ticket = base_ticket()
    c = ticket.tensors[2]
    c.levels = c.levels.copy()
    c.levels[0, :4] = [1, 1, 1, 0]
    return encode_artifact(ticket, codec="zstd", level=19)


def empty_file() -> bytes:
    return b""


def swapped_mask() -> bytes:
    # a different mask with every CRC recomputed: only the weights hash can tell
    parts = split(control_bytes("zlib"))
    blobs = section_blobs(parts)
    raw = bytearray(zlib.decompress(blobs[0]))
    raw[0] ^= 0x01
    blobs[0] = zlib.compress(bytes(raw), 9)
    return repack(parts.header, blobs)


def nan_scale() -> bytes:
    # a.weight's 48 fp16 row scales all NaN, stored raw with a valid CRC
    return _replace_section(1, np.full(48, np.nan, "<f2").tobytes(), codec="none", enc="f16", raw=96)


def inf_plain_value() -> bytes:
    parts = split(control_bytes())
    i = next(i for i, s in enumerate(sections(parts.header)) if s["role"] == "data")
    blobs = section_blobs(parts)
    blobs[i] = np.array([1.0, np.inf, 3.25, 0.5], "<f2").tobytes()
    sections(parts.header)[i].update(codec="none", enc="f16", raw=8)
    return repack(parts.header, blobs)


def huge_float_literal() -> bytes:
    # 1e400 is valid JSON syntax but no 64-bit float: it must not become infinity
    parts = split(control_bytes())
    text = json.dumps(parts.header, separators=(",", ":"))
    return seal(text.replace('"note":"hostile-file control"', '"logit_softcap":1e400', 1), parts.payload)


def _config(**fields) -> Callable[[], bytes]:
    def build() -> bytes:
        return _edit(lambda h: h["config"].update(fields))
    build.__name__ = f"config_{'_'.join(fields)}"
    return build


def tiny_memory_bomb() -> bytes:
    # the red-team file: a 2^30-element all-zero mask in one byte of ans0 (a single-level
    # histogram decodes without a stream); at the default cap it is refused before decoding
    def fn(h: dict) -> None:
        t = h["tensors"][0]
        t.update(shape=[2**24 - 2048, 64], scale="none")
        t["sections"] = [dict(t["sections"][0], enc="ans0", codec="none", raw=1)]
    parts = split(control_bytes())
    blobs = section_blobs(parts)
    fn(parts.header)
    return repack(parts.header, [b"\x00"] + blobs[2:])


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    error: str  # class name in ticketpack.errors
    field: str  # a word the one-line message must contain
    exit_code: int = 3


CASES = [
    Case("zstd_bomb", zstd_bomb, "DecodeError", "a.weight/mask"),
    Case("zstd_bomb_lying_size", zstd_bomb_lying_size, "DecodeError", "a.weight/mask"),
    Case("zlib_bomb", zlib_bomb, "DecodeError", "a.weight/mask"),
    Case("header_bomb", header_bomb, "DecodeError", "header"),
    Case("huge_dims", huge_dims, "LimitError", "dimension"),
    Case("too_many_elements", too_many_elements, "LimitError", "elements"),
    Case("huge_raw_size", huge_raw_size, "LimitError", "raw"),
    Case("overflowing_offset", overflowing_offset, "HeaderError", "section mask"),
    Case("negative_offset", negative_offset, "HeaderError", "section mask"),
    Case("truncated", truncated, "TruncatedError", "truncated"),
    Case("duplicate_names", duplicate_names, "HeaderError", "duplicate"),
    Case("duplicate_json_keys", duplicate_json_keys, "HeaderError", "duplicate JSON key"),
    Case("future_version", future_version, "UnsupportedVersionError", "format version"),
    Case("future_flags", future_flags, "HeaderError", "flags"),
    Case("bad_magic_pickle", bad_magic_pickle, "BadMagicError", "magic"),
    Case("bad_magic_zip", bad_magic_zip, "BadMagicError", "magic"),
    Case("trailing_data", trailing_data, "HeaderError", "trailing"),
    Case("overlapping_sections", overlapping_sections, "HeaderError", "overlap"),
    Case("payload_hole", payload_hole, "HeaderError", "hole"),
    Case("header_not_json", header_not_json, "HeaderError", "JSON"),
    Case("header_not_utf8", header_not_utf8, "HeaderError", "UTF-8"),
    Case("deeply_nested_json", deeply_nested_json, "HeaderError", "JSON"),
    Case("long_integer", long_integer, "HeaderError", "JSON"),
    Case("nan_in_header", nan_in_header, "HeaderError", "NaN"),
    Case("wrong_type_seed", wrong_type_seed, "HeaderError", "seed"),
    Case("wrong_type_dim", wrong_type_dim, "LimitError", "dimension"),
    Case("wrong_type_offset", wrong_type_offset, "HeaderError", "offset"),
    Case("wrong_type_tensors", wrong_type_tensors, "HeaderError", "tensors"),
    Case("lone_surrogate_name", lone_surrogate_name, "HeaderError", "name"),
    Case("unknown_encoding", unknown_encoding, "HeaderError", "encoding"),
    Case("unknown_rng", unknown_rng, "HeaderError", "rng"),
    Case("rank_too_high", rank_too_high, "LimitError", "rank"),
    Case("too_many_tensors", too_many_tensors, "LimitError", "tensors"),
    Case("header_too_large", header_too_large, "LimitError", "header"),
    Case("bad_checksum", bad_checksum, "ChecksumError", "checksum"),
    Case("bad_section_checksum", bad_section_checksum, "ChecksumError", "crc32"),
    Case("corrupt_zstd_section", corrupt_zstd_section, "DecodeError", "a.weight/mask"),
    Case("invalid_trits", invalid_trits, "DecodeError", "d.weight/trits"),
    Case("nm_pattern_lie", nm_pattern_lie, "DecodeError", "c.weight/mask"),
    Case("empty_file", empty_file, "TruncatedError", "file"),
    Case("swapped_mask", swapped_mask, "VerificationError", "weights_sha256", exit_code=1),
    Case("nan_scale", nan_scale, "DecodeError", "a.weight/scale"),
    Case("inf_plain_value", inf_plain_value, "DecodeError", "gain/data"),
    Case("huge_float_literal", huge_float_literal, "HeaderError", "1e400"),
    Case("config_layers_bomb", _config(num_layers=2**40), "HeaderError", "num_layers"),
    Case("config_vocab_bomb", _config(vocab_size=2**62), "HeaderError", "vocab_size"),
    Case("config_mlp_bomb", _config(mlp_mult=2**63), "HeaderError", "mlp_mult"),
    Case("config_softcap_huge", _config(logit_softcap=1e300), "HeaderError", "logit_softcap"),
    Case("config_rope_tiny", _config(rope_base=1e-300), "HeaderError", "rope_base"),
    Case("config_bool_as_int", _config(model_dim=True), "HeaderError", "model_dim"),
    Case("config_parameters_bomb", _config(num_layers=1024, model_dim=2**14), "HeaderError", "parameters"),
    Case("tiny_memory_bomb", tiny_memory_bomb, "LimitError", "elements"),
]


def main() -> None:
    (HERE / "control.tpk").write_bytes(control_bytes())
    manifest = {}
    for case in CASES:
        (HERE / f"{case.name}.tpk").write_bytes(case.build())
        manifest[case.name] = {"error": case.error, "field": case.field, "exit_code": case.exit_code}
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote control.tpk and {len(CASES)} hostile files to {HERE}", file=sys.stderr)


if __name__ == "__main__":
    main()
