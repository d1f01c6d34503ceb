"""Standalone reader of ticketpack `.tpk` artifacts, format version 2 (docs/FORMAT.md).

Needs numpy, plus zstandard for zstd-compressed parts; no ticketpack, torch or numba.
    import tpk_loader; w = tpk_loader.load("model.tpk")   # {name: float32 array}
    python tpk_loader.py model.tpk                       # check it, print a summary
Every frozen weight is regenerated from the seed (Philox4x32-10), masks, scales and values are
decoded, and the per-tensor SHA-256 digests must give the header's weights_sha256 (and its
model_sha256, if present); anything else raises TpkError. Imported parameter-golf tickets
(rng torch-mt19937-cpu/...) need torch's own generator and are refused.
"""
import hashlib, json, math, struct, sys, zlib
from concurrent.futures import ThreadPoolExecutor
import numpy as np

MAGIC, RNG, ONE, M32 = b"\x89TPK\r\n\x1a\n", "philox4x32-10/v1", 1 << 16, 0xFFFFFFFF


class TpkError(Exception):
    """The artifact is malformed, unsupported, or fails a check."""


def need(ok, msg):
    if not ok:
        raise TpkError(msg)


def isint(v, lo=0, hi=1 << 64):
    return type(v) is int and lo <= v <= hi


def inflate(data, codec, raw, what):
    """Decompress one zstd frame / zlib stream / stored bytes to exactly `raw` bytes."""
    try:
        if codec == "zstd":
            import zstandard as zs
            need(zs.get_frame_parameters(data).content_size == raw, f"{what}: zstd frame size")
            d = zs.ZstdDecompressor().decompressobj()
            out, ok = d.decompress(data), d.eof and not d.unused_data
        elif codec == "zlib":
            d = zlib.decompressobj()
            out = d.decompress(data, raw + 1)
            ok = d.eof and not d.unused_data and not d.unconsumed_tail
        else:
            need(codec == "none", f"{what}: unknown codec {codec!r}")
            out, ok = data, True
    except (zlib.error, ImportError, Exception) as e:
        if isinstance(e, TpkError):
            raise
        raise TpkError(f"{what}: cannot decompress ({e})") from None
    need(ok and len(out) == raw, f"{what}: does not decompress to exactly {raw} bytes")
    return out


def strict(pairs):
    d = dict(pairs)
    need(len(d) == len(pairs), "header: duplicate key")
    return d


def finite(s):
    need(math.isfinite(float(s)), f"header: number {s} out of range")
    return float(s)


def nonjson(s):
    raise TpkError(f"header: {s} is not JSON")


def read(buf):
    """Check the container and the header; return (header, payload)."""
    need(len(buf) >= 32 and buf[:8] == MAGIC, "not a .tpk file (bad magic)")
    ver, hc, flags, hl, raw, pl = struct.unpack_from("<HBBIIQ", buf, 8)
    need(ver == 2, f"format version {ver}: this loader reads version 2")
    need(hc < 3 and flags == 0, "bad header codec or flags")
    need(len(buf) >= 32 + hl + pl, "truncated file")
    need(len(buf) == 32 + hl + pl, "trailing data after the CRC")
    need(zlib.crc32(buf[:-4]) == int.from_bytes(buf[-4:], "little"), "CRC-32 mismatch: corrupted")
    need(max(hl, raw) <= 1 << 24, "header over 16 MiB")
    text = inflate(buf[28:28 + hl], ("none", "zlib", "zstd")[hc], raw, "header")
    try:
        h = json.loads(text.decode(), object_pairs_hook=strict, parse_float=finite,
                       parse_constant=nonjson)
    except ValueError as e:
        raise TpkError(f"header: not JSON ({e})") from None
    need(type(h) is dict and isint(h.get("seed"), 0, M32), "header: seed")
    need(h.get("rng") == RNG, f"rng {h.get('rng')!r}: only {RNG} is supported here "
         "(imported torch-mt19937 tickets need torch)")
    ts = h.get("tensors")
    need(type(ts) is list and len(ts) <= 100000, "header: tensors")
    names, spans, total = set(), [], 0
    for t in ts:
        total += check(t, names, spans)
    need(total <= 1 << 30, "more than 2^30 elements")
    spans.sort()
    need([a for a, b in spans] == [0] + [b for a, b in spans][:-1] and
         (spans[-1][1] if spans else 0) == pl, "sections do not tile the payload")
    return h, buf[28 + hl:28 + hl + pl]


def check(t, names, spans):
    """Validate one tensor entry; return its element count."""
    need(type(t) is dict, "header: tensor entry")
    name = t.get("name")
    need(type(name) is str and 1 <= len(name.encode()) <= 1024 and name not in names,
         f"tensor name {name!r}")
    names.add(name)
    shape, kind, secs = t.get("shape"), t.get("kind"), t.get("sections")
    need(type(shape) is list and len(shape) <= 8 and all(isint(d, 0, 1 << 31) for d in shape),
         f"{name}: shape")
    roles = {"plain": ["data"], "ternary": ["trits", "gamma"], "int8": ["q", "scale"]}.get(kind)
    if kind == "masked":
        need(t.get("init") in INITS, f"{name}: init {t.get('init')!r}")
        need(t.get("scale") in ("none", "tensor", "row"), f"{name}: scale")
        mask(t)
        roles = ["mask"] * (t["mask"] != "none") + ["scale"] * (t["scale"] != "none")
    need(roles is not None, f"{name}: kind {kind!r}")
    if kind == "ternary":
        g, gc = t.get("gamma"), t.get("gamma_count")
        need(g in ("tensor", "row") or g == "shard" and isint(gc, 1) and rows(shape) % gc == 0,
             f"{name}: gamma")
    need(type(secs) is list and sorted(s.get("role") for s in secs if type(s) is dict)
         == sorted(roles), f"{name}: sections")
    for s in secs:
        need(all(isint(s.get(k)) for k in ("offset", "length", "raw", "crc"))
             and s.get("codec") in ("zstd", "zlib", "none"), f"{name}: section {s['role']}")
        spans.append((s["offset"], s["offset"] + s["length"]))
    return math.prod(shape)


def mask(t):
    """(K, N, M) of a masked tensor's mask: K levels; N:M or (0, 0); K=0 for `none`."""
    m = t.get("mask")
    p = m.split(":") if type(m) is str else [""]
    try:
        if m in ("binary", "none"):
            return 2 * (m == "binary"), 0, 0
        k = int(p[1])
        if p[0] == "multibit" and len(p) == 2 and p[1] == str(k) and 2 <= k <= 256:
            return k, 0, 0
        n, mm = k, int(p[2])
        if p[0] == "nm" and len(p) == 3 and m == f"nm:{n}:{mm}" and 0 <= n <= mm <= 64 \
                and t["shape"] and t["shape"][-1] % mm == 0:
            return 2, n, mm
    except (ValueError, IndexError, TypeError):
        pass
    raise TpkError(f"{t['name']}: mask {m!r}")


def rows(shape):
    return shape[0] if shape else 1


def bcast(v, shape):
    """Values per row (or one value) shaped to broadcast over a tensor of `shape`."""
    return v.reshape((-1,) + (1,) * (len(shape) - 1)) if shape else v.reshape(())


def bits(d, n):
    need(len(d) == -(-n // 8), "bits: wrong length")
    b = np.unpackbits(np.frombuffer(d, np.uint8), bitorder="little")
    need(not b[n:].any(), "bits: nonzero padding")
    return b[:n]


def varint(d, pos):
    v = sh = 0
    for i in range(10):
        need(pos < len(d), "varint: truncated")
        c = d[pos]
        pos += 1
        v |= (c & 127) << sh
        sh += 7
        if c < 128:
            need(c or not i, "varint: not minimal")
            return v, pos
    raise TpkError("varint: too long")


def static(f):
    """Lookup of a model with frequencies f: slot -> (symbol, f, c)."""
    f = np.asarray(f, np.int64)
    c, tab = np.cumsum(f) - f, np.repeat(np.arange(len(f), dtype=np.int32), f)

    def look(slot, i, k):
        s = tab[slot]
        return s, f[s], c[s]
    return look


def rans(d, pos, n, look):
    """Decode n symbols of the interleaved rANS stream at d[pos:] (FORMAT.md 5.2.1)."""
    need(pos < len(d) and d[pos] <= 12 and len(d) >= pos + 1 + 4 * (1 << d[pos])
         and (len(d) - pos - 1) % 2 == 0, "rans: bad stream header")
    L = 1 << d[pos]
    x = np.frombuffer(d, "<u4", L, pos + 1).astype(np.int64)
    w = np.frombuffer(d, "<u2", offset=pos + 1 + 4 * L).astype(np.int64)
    need((x >= ONE).all(), "rans: bad initial state")
    out, p = np.empty(n, np.int32), 0
    for i in range(0, n, L):
        k = min(L, n - i)
        y = x[:k]
        slot = y & (ONE - 1)
        s, f, c = look(slot, i, k)
        y[:] = f * (y >> 16) + slot - c
        m = y < ONE
        r = int(np.count_nonzero(m))
        if r:
            need(p + r <= len(w), "rans: stream ends early")
            y[m] = (y[m] << 16) | w[p:p + r]
            p += r
        out[i:i + k] = s
    need(p == len(w) and (x == ONE).all(), "rans: stream not used up exactly")
    return out


def rans0(d, n, K):
    """FORMAT.md 5.2.2: order-0 levels 0..K-1."""
    cnt, pos = [], 0
    for _ in range(K - 1):
        v, pos = varint(d, pos)
        cnt.append(v)
    need(sum(cnt) <= n, "rans0: counts exceed n")
    cnt = np.array(cnt + [n - sum(cnt)], np.int64)
    v = np.flatnonzero(cnt)
    P = len(v)
    if P <= 1:
        need(pos == len(d), "rans0: extra bytes")
        return np.full(n, v[0] if P else 0, np.uint8)
    need(pos < len(d), "rans0: truncated")
    B, S = d[pos], -(-n // max(d[pos], 1))
    need(B in (1, 2, 4, 8) and P ** B <= 256, "rans0: bad B")
    dig = (np.arange(P ** B)[:, None] // P ** np.arange(B)) % P
    u = (cnt[v] << 31) // n
    a = np.full(P ** B, 1 << 31, np.int64)
    for j in range(B):
        a = (a * u[dig[:, j]]) >> 31
    f = np.maximum(1, (a << 16) // a.sum())
    f[np.argmax(f)] += ONE - f.sum()
    sym = rans(d, pos + 1, S, static(f))
    z = np.argmax(cnt[v])
    need((dig[sym[-1], n - (S - 1) * B:] == z).all(), "rans0: bad padding")
    lev = v.astype(np.uint8)[dig][sym].reshape(-1)[:n]
    need((np.bincount(lev, minlength=K) == cnt).all(), "rans0: counts do not match")
    return lev


def ransrow(d, shape):
    """FORMAT.md 5.2.3: binary mask, one density per row."""
    R = rows(shape)
    C = math.prod(shape) // R if R else 0
    lo, pos = varint(d, 0)
    need(pos < len(d), "ransrow: truncated")
    w, pos = d[pos], pos + 1
    nb = -(-R * w // 8)
    need(w <= C.bit_length() and len(d) >= pos + nb, "ransrow: bad row header")
    b = np.unpackbits(np.frombuffer(d, np.uint8, nb, pos), bitorder="little")
    need(not b[R * w:].any(), "ransrow: nonzero padding")
    off = b[:R * w].reshape(R, w).astype(np.int64) @ (1 << np.arange(w, dtype=np.int64))
    nr = lo + off
    need(R == 0 and lo == w == 0 or off.min() == 0 and int(off.max()).bit_length() == w
         and nr.max() <= C, "ransrow: bad row counts")
    grid = np.zeros((R, C), np.uint8)
    grid[nr == C] = 1
    mix = np.flatnonzero((nr > 0) & (nr < C))
    if len(mix) == 0:
        need(pos + nb == len(d), "ransrow: extra bytes")
        return grid
    f1 = np.clip((nr[mix] << 16) // C, 1, ONE - 1)
    ar = np.arange(4096)

    def look(slot, i, k):
        g = f1[(i + ar[:k]) // C]
        s = slot >= ONE - g
        return s, np.where(s, g, ONE - g), np.where(s, ONE - g, 0)
    grid[mix] = rans(d, pos + nb, len(mix) * C, look).reshape(-1, C)
    need((grid[mix].sum(1) == nr[mix]).all(), "ransrow: row counts do not match")
    return grid


def ransnm(d, n, N, M):
    """FORMAT.md 5.2.4: N:M masks, group ranks under a uniform model."""
    cnm, groups = math.comb(M, N), n // M
    if cnm == 1 or groups == 0:
        need(len(d) == 0, "ransnm: section must be empty")
        return np.full(n, int(N == M), np.uint8)
    need(len(d) > 0 and d[0] >= 1 and cnm ** d[0] <= ONE, "ransnm: bad G")
    G = d[0]
    A, S = cnm ** G, -(-groups // G)
    q, m = divmod(ONE, A)
    sym = rans(d, 1, S, static(q + (np.arange(A) < m)))
    rk = (np.arange(A)[:, None] // cnm ** np.arange(G)) % cnm
    need(not rk[sym[-1], groups - (S - 1) * G:].any(), "ransnm: bad padding")
    pat, rest = np.zeros((cnm, M), np.uint8), np.arange(cnm)
    for j in range(N, 0, -1):      # inverse colex rank: p_j = max p with C(p, j) <= rest
        cj = np.array([math.comb(p, j) for p in range(M)])
        p = np.searchsorted(cj, rest, "right") - 1
        pat[np.arange(cnm), p] = 1
        rest = rest - cj[p]
    return pat[rk[sym].reshape(-1)[:groups]].reshape(-1)


def levels(t, sec, d):
    """A mask's (or ternary tensor's) levels from its section."""
    shape, n, enc = t["shape"], math.prod(t["shape"]), sec["enc"]
    K, N, M = mask(t) if t["kind"] == "masked" else (3, 0, 0)
    if enc == "bits" and K == 2:
        lev = bits(d, n)
    elif enc == "planes" and t.get("mask", "").startswith("multibit"):
        nb, m = (K - 1).bit_length(), -(-n // 8)
        need(len(d) == nb * m, "planes: wrong length")
        lev = sum(bits(d[i * m:i * m + m], n) << i for i in range(nb))
        need(n == 0 or lev.max() < K, "planes: level out of range")
    elif enc == "trits5" and K == 3:
        need(len(d) == -(-n // 5), "trits5: wrong length")
        x = np.frombuffer(d, np.uint8)
        need((x <= 242).all(), "trits5: byte over 242")
        lev = ((x[:, None] // np.array([1, 3, 9, 27, 81], np.uint8)) % 3).reshape(-1)
        need(not lev[n:].any(), "trits5: nonzero unused trits")
        lev = lev[:n]
    elif enc == "rans0":
        lev = rans0(d, n, K)
    elif enc == "ransrow" and K == 2 and not M:
        lev = ransrow(d, shape)
    elif enc == "ransnm" and M:
        lev = ransnm(d, n, N, M)
    else:
        raise TpkError(f"encoding {enc!r} is not defined for this tensor")
    need(not M or (lev.reshape(-1, M).sum(1) == N).all(), f"mask is not {N}:{M}")
    return lev.reshape(shape)


def floats(sec, d, count):
    """f16 / f32 values, all finite."""
    dt = {"f16": "<f2", "f32": "<f4"}.get(sec["enc"])
    need(dt is not None and len(d) == count * int(dt[2]), f"{sec['role']}: enc or length")
    v = np.frombuffer(d, dt).astype(np.float32)
    need(np.isfinite(v).all(), f"{sec['role']}: non-finite value")
    return v


INITS = {"xavier_uniform", "he_uniform", "signed_constant_xavier", "signed_constant_he"}


def philox(seed, sid, n):
    """Words 0..n-1 of the Philox4x32-10 stream `sid` under key (seed, 0) (FORMAT.md 4)."""
    nb, out, step = -(-n // 4), np.empty(-(-n // 4) * 4, np.uint32), 1 << 16
    for b0 in range(0, nb, step):
        c0 = np.arange(b0, min(nb, b0 + step), dtype=np.uint64)
        c1, c2, c3 = c0 >> 32, np.full_like(c0, sid & M32), np.full_like(c0, sid >> 32)
        c0, k0, k1 = c0 & M32, seed, 0
        for r in range(10):
            p0, p1 = c0 * 0xD2511F53, c2 * 0xCD9E8D57
            c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        out[4 * b0:4 * b0 + 4 * len(c0)] = np.stack([c0, c1, c2, c3], 1).reshape(-1)
    return out[:n]


def frozen(seed, name, shape, init):
    """The frozen float32 weight of a masked tensor (FORMAT.md 4)."""
    sid = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    w = philox(seed, sid, math.prod(shape))
    fo, fi = (shape[0] if shape else 1), math.prod(shape[1:])
    fan = fi if "he" in init.split("_") else fi + fo
    if init.startswith("signed"):
        c = np.float32(math.sqrt(2 / fan))
        v = np.where(w >> 31 == 0, c, -c)
    else:
        c = (w >> 8).astype(np.int32) * 2 - (1 << 24) + 1
        v = c.astype(np.float32) * np.float32(math.sqrt(6 / fan) * 2.0 ** -24)
    return v.reshape(shape)


def tensor(seed, t, pay):
    """Effective float32 weight of one tensor and its SHA-256 (FORMAT.md 6)."""
    name, shape, kind = t["name"], t["shape"], t["kind"]
    S, n, r = {}, math.prod(shape), rows(shape)
    for s in t["sections"]:
        d = pay[s["offset"]:s["offset"] + s["length"]]
        need(zlib.crc32(d) == s["crc"], f"{name}: section {s['role']}: CRC mismatch")
        S[s["role"]] = s, inflate(d, s["codec"], s["raw"], f"{name}: {s['role']}")
    try:
        if kind == "plain":
            w = floats(*S["data"], n).reshape(shape)
        elif kind == "int8":
            need(S["q"][0]["enc"] == "i8" and len(S["q"][1]) == n, "q: enc or length")
            q = np.frombuffer(S["q"][1], np.int8).reshape(shape).astype(np.float32)
            w = q * bcast(floats(*S["scale"], r), shape)
        elif kind == "ternary":
            g = t["gamma"]
            g = floats(*S["gamma"], t["gamma_count"] if g == "shard" else r if g == "row" else 1)
            g = np.repeat(g, r // len(g)) if len(g) > 1 else g
            w = bcast(g, shape) * (levels(t, *S["trits"]).astype(np.float32) - 1)
        else:
            w = frozen(seed, name, shape, t["init"])
            if t["mask"] != "none":
                w = w * levels(t, *S["mask"]).astype(np.float32)
            if t["scale"] != "none":
                w = w * bcast(floats(*S["scale"], r if t["scale"] == "row" else 1), shape)
    except TpkError as e:
        raise TpkError(f"{name}: {e}") from None
    w = np.ascontiguousarray(w, "<f4").reshape(shape)
    b = name.encode()
    h = hashlib.sha256(struct.pack(f"<I{len(b)}sI{len(shape)}Q", len(b), b, len(shape), *shape))
    h.update(w.reshape(-1).view(np.uint8))
    return w, h.digest()


def load(path_or_bytes):
    """Read, regenerate and verify an artifact; return {name: float32 array} in header order."""
    buf = path_or_bytes
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        with open(buf, "rb") as fh:
            buf = fh.read()
    h, pay = read(bytes(buf))
    with ThreadPoolExecutor() as ex:
        out = list(ex.map(lambda t: tensor(h["seed"], t, pay), h["tensors"]))
    digest = hashlib.sha256(b"".join(d for _, d in out)).hexdigest()
    need(digest == h.get("weights_sha256"), "weights_sha256 mismatch: not the packed model")
    return {t["name"]: w for t, (w, _) in zip(h["tensors"], out)}


if __name__ == "__main__":
    try:
        ws = load(sys.argv[1])
    except (TpkError, OSError, IndexError) as e:
        sys.exit(f"error: {e}")
    print(f"ok: {len(ws)} tensors, {sum(w.size for w in ws.values())} values, weights verified")
