"""Reads .tpk artifacts, format version 2 (ticketpack's docs/FORMAT.md): numpy + zstandard.

	import tpk_loader; w = tpk_loader.load("m.tpk")  # {name: float32 array}
	python tpk_loader.py m.tpk                      # verify only
Checks CRC-32s, sizes, limits and both digests, not every canonical-form rule (`ticketpack
verify` does); raises TpkError. Imported (torch-mt19937) tickets need torch: refused.
"""
import hashlib, json, math, re, struct, sys, zlib
from concurrent.futures import ThreadPoolExecutor
import numpy as np

ONE, M32, u8, i64 = 1 << 16, 0xFFFFFFFF, np.uint8, np.int64


class TpkError(Exception):
	pass


def need(ok, msg):
	if not ok:
		raise TpkError(msg)


def isint(v, lo=0, hi=1 << 64):
	return type(v) is int and lo <= v <= hi


def finite(s):
	need(math.isfinite(float(s)), f"{s} is not finite")
	return float(s)


def strict(kv):
	need(len(dict(kv)) == len(kv), "duplicate key")
	return dict(kv)


def inflate(d, codec, raw):
	try:
		if codec == "zstd":
			import zstandard as zs
			need(zs.get_frame_parameters(d).content_size == raw, "zstd frame size")
			d = zs.ZstdDecompressor().decompress(d)
		elif codec == "zlib":
			d = zlib.decompressobj().decompress(d, raw + 1)
		else:
			need(codec == "none", f"codec {codec!r}")
	except (ImportError, zlib.error, ValueError) as e:
		raise TpkError(f"cannot decompress ({e!r})") from None
	need(len(d) == raw, f"not {raw} bytes after {codec}")
	return d


def read(buf):
	# sections 1-3 and 7
	need(buf[:8] == b"\x89TPK\r\n\x1a\n" and len(buf) >= 32, "not a .tpk file")
	ver, hc, flags, hl, raw, pl = struct.unpack_from("<HBBIIQ", buf, 8)
	need(ver == 2, f"format version {ver}: this loader reads version 2")
	need(hc < 3 and flags == 0, "bad header codec or flags")
	need(len(buf) == 32 + hl + pl, "file is truncated or has trailing data")
	need(zlib.crc32(buf[:-4]) == int.from_bytes(buf[-4:], "little"), "CRC-32 mismatch")
	need(max(hl, raw) <= 1 << 24, "header over 16 MiB")
	try:
		h = json.loads(inflate(buf[28:28 + hl], ("none", "zlib", "zstd")[hc], raw).decode(),
			object_pairs_hook=strict, parse_float=finite, parse_constant=finite)
		need(isint(h["seed"], 0, M32), "seed")
		need(h["rng"] == "philox4x32-10/v1", f"rng {h['rng']!r} is not supported")
		names, spans, ts = set(), [], h["tensors"]
		need(len(ts) <= 100000 and sum(check(t, names, spans) for t in ts) <= 1 << 30, "too big")
	except TpkError as e:
		raise TpkError(f"header: {e}") from None
	except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
		raise TpkError(f"header: {e!r}") from None
	spans.sort()
	need([a for a, _ in spans] + [pl] == [0] + [b for _, b in spans], "sections do not tile the payload")
	return h, buf[28 + hl:-4]


def check(t, names, spans):
	# a tensor entry (sections 2.1, 3, 7); returns its element count
	name, shape, kind = t["name"], t["shape"], t["kind"]
	need(type(name) is str and 0 < len(name.encode()) <= 1024 and name not in names, f"name {name!r}")
	names.add(name)
	need(kind in ("plain", "ternary", "int8", "masked"), f"{name}: kind {kind!r}")
	n = math.prod(shape)
	need(type(shape) is list and len(shape) <= 8 and all(isint(d, 0, 1 << 31) for d in shape)
		and (kind in ("plain", "ternary") or shape and (kind == "int8" or n)), f"{name}: shape")
	need(kind != "masked" or mask(t) and t["init"] in INITS and t["scale"] in ("none", "tensor",
		"row"), f"{name}: init or scale")
	for s in t["sections"]:
		need(all(isint(s[k]) for k in ("offset", "length", "crc")) and isint(s["raw"], 0, 8 * n + 4096),
			f"{name}: {s['role']} section")
		spans.append((s["offset"], s["offset"] + s["length"]))
	return n


INITS = ("xavier_uniform", "he_uniform", "signed_constant_xavier", "signed_constant_he")


def mask(t):
	# (K levels, N, M): K = 0 for `none`, M = 0 unless N:M
	m = re.fullmatch(r"(none|binary)|multibit:([1-9]\d*)|nm:([1-9]\d*):([1-9]\d*)", str(t["mask"]))
	k, n, mm = [int(v or 0) for v in m.groups()[1:]] if m else (0, 0, 0)
	need(m and (m[1] or 2 <= k <= 256 or n < mm <= 256 and t["shape"][-1] % mm == 0),
		f"{t['name']}: mask {t['mask']!r}")
	return 2 * (m[1] == "binary") if m[1] else k or 2, n, mm


def bcast(v, shape):  # per-row values (or one value), shaped to broadcast over `shape`
	return v.reshape((-1,) + (1,) * (len(shape) - 1)) if shape else v.reshape(())


def bits(d, n):
	need(len(d) == -(-n // 8), "bits: wrong length")
	return np.unpackbits(np.frombuffer(d, u8), bitorder="little")[:n]


def varint(d, pos):
	v = i = 0
	while pos < len(d) and i < 70:
		v, i, pos = v | (d[pos] & 127) << i, i + 7, pos + 1
		if d[pos - 1] < 128:
			return v, pos
	raise TpkError("bad LEB128")


def static(f):  # one model for all symbols: slots -> (symbols, f, c)
	f = np.asarray(f, i64)
	tab = np.repeat(np.arange(len(f)), f)
	ft, ct = f[tab], (np.cumsum(f) - f)[tab]
	return lambda slot, i, k: (tab[slot], ft[slot], ct[slot])


def rans(d, pos, n, look):
	# n symbols of the stream at d[pos:] (section 5.2.1), its lanes as numpy vectors
	L = 1 << d[pos] if pos < len(d) and d[pos] <= 12 else 1 << 40
	need(len(d) >= pos + 1 + 4 * L and (len(d) - pos - 1) % 2 == 0, "rans: bad stream")
	x = np.frombuffer(d, "<u4", L, pos + 1).astype(i64)
	w = np.frombuffer(d, "<u2", offset=pos + 1 + 4 * L).astype(i64)
	need((x >= ONE).all(), "rans: bad state")
	out, p = np.empty(n, i64), 0
	for i in range(0, n, L):
		k = min(L, n - i)
		y = x[:k]
		slot = y & (ONE - 1)
		out[i:i + k], f, c = look(slot, i, k)
		y[:] = f * (y >> 16) + slot - c
		m = y < ONE
		r = int(np.count_nonzero(m))
		if r:
			need(p + r <= len(w), "rans: stream ends early")
			y[m] = (y[m] << 16) | w[p:p + r]
			p += r
	need(p == len(w) and (x == ONE).all(), "rans: stream not used up exactly")
	return out


def product(cnt, B):
	# section 5.2.2's model of B elements per symbol, for level counts cnt (all > 0)
	P = len(cnt)
	dig = (np.arange(P ** B)[:, None] // P ** np.arange(B)) % P
	u, a = (cnt << 31) // cnt.sum(), np.full(P ** B, 1 << 31, i64)
	for j in range(B):
		a = (a * u[dig[:, j]]) >> 31
	f = np.maximum(1, (a << 16) // a.sum())
	f[np.argmax(f)] += ONE - f.sum()
	return f, dig


def rans0(d, n, K):
	cnt, pos = [], 0
	for _ in range(K - 1):
		v, pos = varint(d, pos)
		cnt.append(v)
	need(sum(cnt) <= n, "rans0: counts")
	cnt = np.array(cnt + [n - sum(cnt)], i64)
	v = np.flatnonzero(cnt)
	P = len(v)
	if P < 2:
		return np.full(n, v[0] if P else 0, u8)
	B = d[pos] if pos < len(d) else 0
	need(B in (1, 2, 4, 8) and P ** B <= 256, "rans0: bad B")
	f, dig = product(cnt[v], B)
	return v.astype(u8)[dig][rans(d, pos + 1, -(-n // B), static(f))].reshape(-1)[:n]


def ransrow(d, shape):
	R = shape[0]
	C = math.prod(shape) // R
	lo, pos = varint(d, 0)
	w, nb = (d[pos], -(-R * d[pos] // 8)) if pos < len(d) else (99, 0)
	need(w <= C.bit_length() and len(d) > pos + nb, "ransrow: bad row header")
	b = np.unpackbits(np.frombuffer(d, u8, nb, pos + 1), bitorder="little")
	nr = lo + b[:R * w].reshape(R, w).astype(i64) @ (1 << np.arange(w, dtype=i64))
	need(nr.max() <= C, "ransrow: bad row counts")
	grid = np.zeros((R, C), u8)
	grid[nr == C] = 1
	mix = np.flatnonzero((nr > 0) & (nr < C))
	if len(mix) == 0:
		return grid
	B = d[pos + 1 + nb] if pos + 1 + nb < len(d) else 0
	need(B in (1, 2, 4, 8), "ransrow: bad B")
	Q, ar = -(-C // B), np.arange(4096)
	dv, mi = np.unique(nr[mix], return_inverse=True)  # one model per distinct row count
	f = np.stack([product(np.array([C - k, k]), B)[0] for k in dv])
	c = np.cumsum(f, 1) - f
	cc = (c + (np.arange(len(dv))[:, None] << 16)).reshape(-1)

	def look(slot, i, k):
		m = mi[(i + ar[:k]) // Q]
		s = np.searchsorted(cc, (m << 16) + slot, "right") - 1 - (m << B)
		return s, f[m, s], c[m, s]
	sym = rans(d, pos + 2 + nb, len(mix) * Q, look)
	grid[mix] = ((sym[:, None] >> np.arange(B)) & 1).reshape(len(mix), -1)[:, :C]
	return grid


def ransnm(d, n, N, M):
	cnm, groups = math.comb(M, N), n // M
	G = d[0] if d else 0
	need(G and cnm ** G <= ONE, "ransnm: bad G")
	A = cnm ** G
	sym = rans(d, 1, -(-groups // G), static(ONE // A + (np.arange(A) < ONE % A)))
	rk = (np.arange(A)[:, None] // cnm ** np.arange(G)) % cnm
	pat, rest = np.zeros((cnm, M), u8), np.arange(cnm)
	for j in range(N, 0, -1):  # unrank: p_j = the largest p with C(p, j) <= rest
		cj = np.array([math.comb(p, j) for p in range(M)])
		p = np.searchsorted(cj, rest, "right") - 1
		pat[np.arange(cnm), p] = 1
		rest = rest - cj[p]
	return pat[rk[sym].reshape(-1)[:groups]].reshape(-1)


def levels(t, sec, d):
	# mask levels or trits + 1 (section 5)
	shape, enc = t["shape"], sec["enc"]
	n, (K, N, M) = math.prod(shape), mask(t) if t["kind"] == "masked" else (3, 0, 0)
	if enc == "bits" and K == 2:
		lev = bits(d, n)
	elif enc == "planes" and t.get("mask", "")[:1] == "m":
		m = -(-n // 8)
		need(len(d) == m * (K - 1).bit_length(), "planes: wrong length")
		lev = sum(bits(d[i * m:i * m + m], n) << i for i in range(len(d) // m))
		need(lev.max() < K, "planes: level out of range")
	elif enc == "trits5" and K == 3:
		x = np.frombuffer(d, u8)
		need(len(d) == -(-n // 5) and (x < 243).all(), "trits5: bad bytes")
		lev = ((x[:, None] // np.array([1, 3, 9, 27, 81], u8)) % 3).reshape(-1)[:n]
	elif enc == "rans0":
		lev = rans0(d, n, K)
	elif enc == "ransrow" and K == 2 and len(shape) > 1:
		lev = ransrow(d, shape)
	elif enc == "ransnm" and M:
		lev = ransnm(d, n, N, M)
	else:
		raise TpkError(f"encoding {enc!r} not allowed here")
	need(not M or (lev.reshape(-1, M).sum(1) == N).all(), f"mask is not {N}:{M}")
	return lev.reshape(shape).astype(np.float32)


def floats(sec, d, count):
	dt = {"f16": "<f2", "f32": "<f4", "i8": "i1"}.get(sec["enc"])
	need(dt and (sec["role"] == "q") == (dt == "i1") and len(d) == count * np.dtype(dt).itemsize,
		f"{sec['role']}: enc or length")
	v = np.frombuffer(d, dt).astype(np.float32)
	need(np.isfinite(v).all(), f"{sec['role']}: non-finite value")
	return v


def philox(seed, sid, n):
	# words 0..n-1 of stream `sid` (section 4)
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
	sid = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
	w = philox(seed, sid, math.prod(shape))
	fan = math.prod(shape[1:]) + (0 if "he" in init.split("_") else shape[0])
	if init[0] == "s":
		c = np.float32(math.sqrt(2 / fan))
		return np.where(w >> 31 == 0, c, -c).reshape(shape)
	c = (w >> 8).astype(np.float32) * 2 - (M32 >> 8)  # exact: odd integers below 2^24
	return (c * np.float32(math.sqrt(6 / fan) * 2.0 ** -24)).reshape(shape)


def tensor(seed, t, pay):
	# effective weight and tensor_sha256 (section 6)
	name, shape, kind = t["name"], t["shape"], t["kind"]
	S, n, r = {}, math.prod(shape), shape[0] if shape else 1
	try:
		for s in t["sections"]:
			d = pay[s["offset"]:s["offset"] + s["length"]]
			need(zlib.crc32(d) == s["crc"], f"{s['role']} section CRC mismatch")
			S[s["role"]] = s, inflate(d, s["codec"], s["raw"])
		if kind == "plain":
			w = floats(*S["data"], n).reshape(shape)
		elif kind == "int8":
			w = floats(*S["q"], n).reshape(shape) * bcast(floats(*S["scale"], r), shape)
		elif kind == "ternary":
			g = t["gamma_count"]
			need(g == {"tensor": 1, "row": r, "shard": g}[t["gamma"]] and isint(g)
				and (r % g == 0 if g else r == 0), "gamma_count")
			g = np.repeat(floats(*S["gamma"], g), r // g if g else 0)
			w = bcast(g, shape) * (levels(t, *S["trits"]) - 1)
		else:
			w = frozen(seed, name, shape, t["init"])
			if t["mask"] != "none":
				w = w * levels(t, *S["mask"])
			if t["scale"] != "none":
				w = w * bcast(floats(*S["scale"], r if t["scale"] == "row" else 1), shape)
	except KeyError as e:
		raise TpkError(f"{name}: no {e}") from None
	except (TpkError, ValueError, TypeError, IndexError) as e:
		raise TpkError(f"{name}: {e}") from None
	w, b = w.astype("<f4", order="C", copy=False), name.encode()
	h = hashlib.sha256(struct.pack(f"<I{len(b)}sI{len(shape)}Q", len(b), b, len(shape), *shape))
	h.update(w.reshape(-1).view(u8))
	return w, h.digest()


def canon(v):
	# section 6.2
	if v is None or type(v) is bool:
		return bytes([0 if v is None else 1 + v])
	if type(v) is int:
		return b"\3" + v.to_bytes(8, "little", signed=True)
	if type(v) is float:
		return b"\4" + struct.pack("<d", v)
	if type(v) is str:
		return b"\5" + lp(v.encode())
	if type(v) is list:
		return b"\6" + struct.pack("<I", len(v)) + b"".join(map(canon, v))
	kv = sorted((k.encode(), x) for k, x in v.items())
	return b"\7" + struct.pack("<I", len(v)) + b"".join(lp(k) + canon(x) for k, x in kv)


def lp(b):
	return struct.pack("<I", len(b)) + b


def load(path):
	"""Read, regenerate and verify an artifact: {name: float32 array} in header order."""
	with open(path, "rb") as fh:
		h, pay = read(fh.read())
	with ThreadPoolExecutor() as ex:
		out = list(ex.map(lambda t: tensor(h["seed"], t, pay), h["tensors"]))
	wd = hashlib.sha256(b"".join(d for _, d in out))
	need(wd.hexdigest() == h.get("weights_sha256"), "weights_sha256 mismatch")
	try:
		md = b"ticketpack/model-sha256/v2\0" + wd.digest() + canon(h["config"]) + canon(h.get("eval"))
	except (OverflowError, KeyError, AttributeError) as e:
		raise TpkError(f"header: config or eval: {e!r}") from None
	need(hashlib.sha256(md).hexdigest() == h.get("model_sha256"), "model_sha256 mismatch")
	return {t["name"]: w for t, (w, _) in zip(h["tensors"], out)}


if __name__ == "__main__":
	try:
		print(f"ok: {len(load(sys.argv[1]))} tensors verified")
	except (TpkError, OSError) as e:
		sys.exit(f"error: {e}")
