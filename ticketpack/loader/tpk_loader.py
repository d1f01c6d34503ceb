"""Standalone reader of ticketpack .tpk artifacts, format version 2 (docs/FORMAT.md).

Needs numpy (and zstandard for zstd parts); not ticketpack, torch or numba.
    import tpk_loader; w = tpk_loader.load("m.tpk")  # {name: float32 array}
    python tpk_loader.py m.tpk                      # check it, print a summary
Frozen weights are regenerated from the seed (Philox4x32-10) and the tensors' SHA-256 digests
must give the header's weights_sha256, else TpkError. Imported parameter-golf tickets (rng
torch-mt19937-cpu/...) need torch's generator: refused.
"""
import hashlib, json, math, re, struct, sys, zlib
from concurrent.futures import ThreadPoolExecutor
import numpy as np

ONE, M32 = 1 << 16, 0xFFFFFFFF
INITS = ("xavier_uniform", "he_uniform", "signed_constant_xavier", "signed_constant_he")


class TpkError(Exception):
    """The artifact is malformed, unsupported or fails a check."""


def need(ok, msg):
    if not ok:
        raise TpkError(msg)


def isint(v, lo=0, hi=1 << 64):
    return type(v) is int and lo <= v <= hi


def inflate(d, codec, raw, what):
    """One zstd frame / zlib stream / stored bytes giving exactly `raw` bytes."""
    try:
        if codec == "zstd":
            import zstandard as zs
            need(zs.get_frame_parameters(d).content_size == raw, f"{what}: zstd frame size")
            z = zs.ZstdDecompressor().decompressobj()
            d, ok = z.decompress(d), z.eof and not z.unused_data
        elif codec == "zlib":
            z = zlib.decompressobj()
            d = z.decompress(d, raw + 1)
            ok = z.eof and not z.unused_data + z.unconsumed_tail
        else:
            ok = codec == "none"
    except TpkError:
        raise
    except Exception as e:
        raise TpkError(f"{what}: cannot decompress ({e})") from None
    need(ok and len(d) == raw, f"{what}: not {raw} bytes of {codec}")
    return d


def pairs(p):
    need(len(dict(p)) == len(p), "header: duplicate key")
    return dict(p)


def number(s):
    need(math.isfinite(float(s)), f"header: {s} is not a finite number")
    return float(s)


def read(buf):
    """Check the container and the header; return (header, payload)."""
    need(buf[:8] == b"\x89TPK\r\n\x1a\n" and len(buf) >= 32, "not a .tpk file")
    ver, hc, flags, hl, raw, pl = struct.unpack_from("<HBBIIQ", buf, 8)
    need(ver == 2, f"format version {ver}: this loader reads version 2")
    need(hc < 3 and flags == 0, "bad header codec or flags")
    need(len(buf) >= 32 + hl + pl, "truncated file")
    need(len(buf) == 32 + hl + pl, "trailing data")
    need(zlib.crc32(buf[:-4]) == int.from_bytes(buf[-4:], "little"), "CRC-32 mismatch")
    need(max(hl, raw) <= 1 << 24, "header over 16 MiB")
    try:
        h = json.loads(inflate(buf[28:28 + hl], ("none", "zlib", "zstd")[hc], raw, "header").decode(),
                       object_pairs_hook=pairs, parse_float=number, parse_constant=number)
    except (ValueError, UnicodeError) as e:
        raise TpkError(f"header: not JSON ({e})") from None
    need(type(h) is dict and isint(h.get("seed"), 0, M32), "header: seed")
    need(h.get("rng") == "philox4x32-10/v1", f"rng {h.get('rng')!r}: only philox4x32-10/v1 is supported")
    ts = h.get("tensors")
    need(type(ts) is list and len(ts) <= 100000, "header: tensors")
    names, spans = set(), []
    need(sum(check(t, names, spans) for t in ts) <= 1 << 30, "more than 2^30 elements")
    spans.sort()
    need([a for a, _ in spans] == [0] + [b for _, b in spans][:-1]
         and (spans[-1][1] if spans else 0) == pl, "sections do not tile the payload")
    return h, buf[28 + hl:-4]


def check(t, names, spans):
    """Validate a tensor entry; return its element count."""
    need(type(t) is dict, "header: tensor entry")
    name, shape, kind, secs = t.get("name"), t.get("shape"), t.get("kind"), t.get("sections")
    need(type(name) is str and 0 < len(name.encode()) <= 1024 and name not in names,
         f"tensor name {name!r}")
    names.add(name)
    need(type(shape) is list and len(shape) <= 8 and all(isint(d, 1, 1 << 31) for d in shape),
         f"{name}: shape")
    roles = {"plain": ["data"], "ternary": ["trits", "gamma"], "int8": ["q", "scale"]}.get(kind)
    if kind == "masked":
        need(t.get("init") in INITS and t.get("scale") in ("none", "tensor", "row"),
             f"{name}: init or scale")
        roles = ["mask"] * (mask(t)[0] > 0) + ["scale"] * (t["scale"] != "none")
    need(roles is not None, f"{name}: kind {kind!r}")
    g, gc = t.get("gamma"), t.get("gamma_count")
    need(kind != "ternary" or g in ("tensor", "row") or g == "shard" and isint(gc, 1)
         and rows(shape) % gc == 0, f"{name}: gamma")
    need(type(secs) is list and all(type(s) is dict for s in secs)
         and sorted(str(s.get("role")) for s in secs) == sorted(roles), f"{name}: section roles")
    for s in secs:
        need(all(isint(s.get(k)) for k in ("offset", "length", "raw", "crc"))
             and s.get("codec") in ("zstd", "zlib", "none"), f"{name}: {s['role']} section")
        spans.append((s["offset"], s["offset"] + s["length"]))
    return math.prod(shape)


def mask(t):
    """(K, N, M) of a masked tensor: K levels (0 for `none`), N:M or M = 0."""
    m = re.fullmatch(r"(none|binary)|multibit:([1-9]\d*)|nm:(0|[1-9]\d*):([1-9]\d*)",
                     str(t.get("mask")))
    k, n, mm = [int(v) if v else 0 for v in m.groups()[1:]] if m else (0, 0, 0)
    need(m and (m[1] or 2 <= k <= 256 or m[3] and n <= mm <= 64 and t["shape"] and t["shape"][-1] % mm == 0),
         f"{t['name']}: mask {t.get('mask')!r}")
    return 2 * (m[1] == "binary") if m[1] else k or 2, n, mm


def rows(shape):
    return shape[0] if shape else 1


def bcast(v, shape):
    """Per-row values (or one value) shaped to broadcast over `shape`."""
    return v.reshape((-1,) + (1,) * (len(shape) - 1)) if shape else v.reshape(())


def bits(d, n):
    need(len(d) == -(-n // 8), "bits: wrong length")
    b = np.unpackbits(np.frombuffer(d, np.uint8), bitorder="little")
    need(not b[n:].any(), "bits: nonzero padding")
    return b[:n]


def varint(d, pos):
    v = 0
    for i in range(10):
        need(pos + i < len(d), "varint: truncated")
        v |= (d[pos + i] & 127) << 7 * i
        if d[pos + i] < 128:
            need(d[pos + i] or not i, "varint: not minimal")
            return v, pos + i + 1
    raise TpkError("varint: too long")


def static(f):
    """Model lookup for frequencies f: slots -> (symbols, f, c)."""
    f = np.asarray(f, np.int64)
    c, tab = np.cumsum(f) - f, np.repeat(np.arange(len(f), dtype=np.int32), f)

    def look(slot, i, k):
        s = tab[slot]
        return s, f[s], c[s]
    return look


def rans(d, pos, n, look):
    """n symbols of the interleaved rANS stream at d[pos:] (FORMAT.md 5.2.1)."""
    need(pos < len(d) and d[pos] <= 12 and len(d) >= pos + 1 + 4 * (1 << d[pos])
         and (len(d) - pos - 1) % 2 == 0, "rans: bad stream")
    L = 1 << d[pos]
    x = np.frombuffer(d, "<u4", L, pos + 1).astype(np.int64)
    w = np.frombuffer(d, "<u2", offset=pos + 1 + 4 * L).astype(np.int64)
    need((x >= ONE).all(), "rans: bad state")
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
    need(sum(cnt) <= n, "rans0: counts")
    cnt = np.array(cnt + [n - sum(cnt)], np.int64)
    v = np.flatnonzero(cnt)
    P = len(v)
    if P < 2:
        need(pos == len(d), "rans0: extra bytes")
        return np.full(n, v[0] if P else 0, np.uint8)
    B = d[pos] if pos < len(d) else 0
    need(B in (1, 2, 4, 8) and P ** B <= 256, "rans0: bad B")
    S, dig = -(-n // B), (np.arange(P ** B)[:, None] // P ** np.arange(B)) % P
    u, a = (cnt[v] << 31) // n, np.full(P ** B, 1 << 31, np.int64)
    for j in range(B):
        a = (a * u[dig[:, j]]) >> 31
    f = np.maximum(1, (a << 16) // a.sum())
    f[np.argmax(f)] += ONE - f.sum()
    sym = rans(d, pos + 1, S, static(f))
    need((dig[sym[-1], n - (S - 1) * B:] == np.argmax(cnt[v])).all(), "rans0: bad padding")
    lev = v.astype(np.uint8)[dig][sym].reshape(-1)[:n]
    need((np.bincount(lev, minlength=K) == cnt).all(), "rans0: counts do not match")
    return lev


def ransrow(d, shape):
    """FORMAT.md 5.2.3: binary mask, one density per row."""
    R = rows(shape)
    C = math.prod(shape) // R
    lo, pos = varint(d, 0)
    w, nb = (d[pos], -(-R * d[pos] // 8)) if pos < len(d) else (99, 0)
    need(w <= C.bit_length() and len(d) > pos + nb, "ransrow: bad row header")
    b = np.unpackbits(np.frombuffer(d, np.uint8, nb, pos + 1), bitorder="little")
    off = b[:R * w].reshape(R, w).astype(np.int64) @ (1 << np.arange(w, dtype=np.int64))
    nr = lo + off
    need(not b[R * w:].any() and off.min() == 0 and int(off.max()).bit_length() == w
         and nr.max() <= C, "ransrow: bad row counts")
    grid = np.zeros((R, C), np.uint8)
    grid[nr == C] = 1
    mix = np.flatnonzero((nr > 0) & (nr < C))
    if len(mix) == 0:
        need(pos + 1 + nb == len(d), "ransrow: extra bytes")
        return grid
    B = d[pos + 1 + nb] if pos + 1 + nb < len(d) else 0
    need(B in (1, 2, 4, 8), "ransrow: bad B")
    Q, A, n1 = -(-C // B), 1 << B, nr[mix]
    dv, mi = np.unique(n1, return_inverse=True)
    dig = (np.arange(A)[:, None] >> np.arange(B)) & 1
    u, a = (np.stack([C - dv, dv], 1) << 31) // C, np.full((len(dv), A), 1 << 31, np.int64)
    for j in range(B):
        a = (a * u[:, dig[:, j]]) >> 31
    f = np.maximum(1, (a << 16) // a.sum(1, keepdims=True))
    f[np.arange(len(f)), np.argmax(f, 1)] += ONE - f.sum(1)
    c, ar = np.cumsum(f, 1) - f, np.arange(4096)

    def look(slot, i, k):
        m = mi[(i + ar[:k]) // Q]
        s = (c[m] <= slot[:, None]).sum(1) - 1
        return s, f[m, s], c[m, s]
    b = dig[rans(d, pos + 2 + nb, len(mix) * Q, look)].reshape(len(mix), Q * B)
    need((b[:, C:] == (n1 > C - n1)[:, None]).all() and (b[:, :C].sum(1) == n1).all(),
         "ransrow: row counts do not match")
    grid[mix] = b[:, :C]
    return grid


def ransnm(d, n, N, M):
    """FORMAT.md 5.2.4: N:M masks, group ranks under a uniform model."""
    cnm, groups = math.comb(M, N), n // M
    if cnm == 1:
        need(len(d) == 0, "ransnm: section must be empty")
        return np.full(n, int(N == M), np.uint8)
    G = d[0] if d else 0
    need(G and cnm ** G <= ONE, "ransnm: bad G")
    A, S = cnm ** G, -(-groups // G)
    sym = rans(d, 1, S, static(ONE // A + (np.arange(A) < ONE % A)))
    rk = (np.arange(A)[:, None] // cnm ** np.arange(G)) % cnm
    need(not rk[sym[-1], groups - (S - 1) * G:].any(), "ransnm: bad padding")
    pat, rest = np.zeros((cnm, M), np.uint8), np.arange(cnm)
    for j in range(N, 0, -1):  # unrank: p_j = the largest p with C(p, j) <= rest
        cj = np.array([math.comb(p, j) for p in range(M)])
        p = np.searchsorted(cj, rest, "right") - 1
        pat[np.arange(cnm), p] = 1
        rest = rest - cj[p]
    return pat[rk[sym].reshape(-1)[:groups]].reshape(-1)


def levels(t, sec, d):
    """Levels of a mask or ternary symbols (trit + 1) from their section."""
    shape, enc = t["shape"], sec["enc"]
    n, (K, N, M) = math.prod(shape), mask(t) if t["kind"] == "masked" else (3, 0, 0)
    if enc == "bits" and K == 2:
        lev = bits(d, n)
    elif enc == "planes" and t["mask"][0] == "m":
        nb, m = (K - 1).bit_length(), -(-n // 8)
        need(len(d) == nb * m, "planes: wrong length")
        lev = sum(bits(d[i * m:i * m + m], n) << i for i in range(nb))
        need(lev.max() < K, "planes: level out of range")
    elif enc == "trits5" and K == 3:
        x = np.frombuffer(d, np.uint8)
        lev = ((x[:, None] // np.array([1, 3, 9, 27, 81], np.uint8)) % 3).reshape(-1)
        need(len(d) == -(-n // 5) and (x < 243).all() and not lev[n:].any(), "trits5: bad bytes")
        lev = lev[:n]
    elif enc == "rans0":
        lev = rans0(d, n, K)
    elif enc == "ransrow" and K == 2 and not M and shape:
        lev = ransrow(d, shape)
    elif enc == "ransnm" and M:
        lev = ransnm(d, n, N, M)
    else:
        raise TpkError(f"encoding {enc!r} not allowed here")
    need(not M or (lev.reshape(-1, M).sum(1) == N).all(), f"mask is not {N}:{M}")
    return lev.reshape(shape).astype(np.float32)


def floats(sec, d, count):
    """f16 / f32 values, all finite."""
    dt = {"f16": "<f2", "f32": "<f4"}.get(sec["enc"])
    need(dt and len(d) == count * int(dt[2]), f"{sec['role']}: enc or length")
    v = np.frombuffer(d, dt).astype(np.float32)
    need(np.isfinite(v).all(), f"{sec['role']}: non-finite value")
    return v


def philox(seed, sid, n):
    """Words 0..n-1 of Philox4x32-10 stream `sid` under key (seed, 0) (FORMAT.md 4)."""
    nb = -(-n // 4)
    out, step = np.empty(nb * 4, np.uint32), 1 << 16
    for b0 in range(0, nb, step):
        c0 = np.arange(b0, min(nb, b0 + step), dtype=np.uint64)
        c1, c2, c3 = c0 >> 32, np.full_like(c0, sid & M32), np.full_like(c0, sid >> 32)
        c0, k0, k1 = c0 & M32, seed, 0
        for _ in range(10):
            p0, p1 = c0 * 0xD2511F53, c2 * 0xCD9E8D57
            c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        out[4 * b0:4 * b0 + 4 * len(c0)] = np.stack([c0, c1, c2, c3], 1).reshape(-1)
    return out[:n]


def frozen(seed, name, shape, init):
    """The frozen float32 weight of a masked tensor (FORMAT.md 4)."""
    w = philox(seed, int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"),
               math.prod(shape))
    fan = math.prod(shape[1:]) + (0 if "he" in init.split("_") else rows(shape))
    if init[0] == "s":
        c = np.float32(math.sqrt(2 / fan))
        return np.where(w >> 31 == 0, c, -c).reshape(shape)
    c = ((w >> 8).astype(np.int32) * 2 - M32 // 256).astype(np.float32)
    return (c * np.float32(math.sqrt(6 / fan) * 2.0 ** -24)).reshape(shape)


def tensor(seed, t, pay):
    """Effective float32 weight of a tensor and its SHA-256 (FORMAT.md 6)."""
    name, shape, kind = t["name"], t["shape"], t["kind"]
    S, n, r = {}, math.prod(shape), rows(shape)
    for s in t["sections"]:
        d = pay[s["offset"]:s["offset"] + s["length"]]
        need(zlib.crc32(d) == s["crc"], f"{name}: {s['role']} section CRC mismatch")
        S[s["role"]] = s, inflate(d, s["codec"], s["raw"], f"{name}: {s['role']}")
    try:
        if kind == "plain":
            w = floats(*S["data"], n).reshape(shape)
        elif kind == "int8":
            need(S["q"][0]["enc"] == "i8" and len(S["q"][1]) == n, "q: enc or length")
            w = np.frombuffer(S["q"][1], np.int8).reshape(shape).astype(np.float32)
            w = w * bcast(floats(*S["scale"], r), shape)
        elif kind == "ternary":
            g = t["gamma"]
            g = floats(*S["gamma"], t["gamma_count"] if g == "shard" else r if g == "row" else 1)
            w = bcast(np.repeat(g, r // len(g)), shape) * (levels(t, *S["trits"]) - 1)
        else:
            w = frozen(seed, name, shape, t["init"])
            if "mask" in S:
                w = w * levels(t, *S["mask"])
            if "scale" in S:
                w = w * bcast(floats(*S["scale"], r if t["scale"] == "row" else 1), shape)
    except TpkError as e:
        raise TpkError(f"{name}: {e}") from None
    w, b = np.ascontiguousarray(w, "<f4"), name.encode()
    h = hashlib.sha256(struct.pack(f"<I{len(b)}sI{len(shape)}Q", len(b), b, len(shape), *shape))
    h.update(w.reshape(-1).view(np.uint8))
    return w, h.digest()


def load(path):
    """Read, regenerate and verify an artifact: {name: float32 array}, in header order."""
    with open(path, "rb") as fh:
        h, pay = read(fh.read())
    with ThreadPoolExecutor() as ex:
        out = list(ex.map(lambda t: tensor(h["seed"], t, pay), h["tensors"]))
    need(hashlib.sha256(b"".join(d for _, d in out)).hexdigest() == h.get("weights_sha256"),
         "weights_sha256 mismatch: not the weights that were packed")
    return {t["name"]: w for t, (w, _) in zip(h["tensors"], out)}


if __name__ == "__main__":
    try:
        ws = load(sys.argv[1])
    except (TpkError, OSError, IndexError) as e:
        sys.exit(f"error: {e}")
    print(f"ok: {len(ws)} tensors, {sum(w.size for w in ws.values()):,} values verified")
