"""Reads .tpk artifacts, format version 2 (ticketpack's docs/FORMAT.md): numpy + zstandard.

	tpk_loader.load("m.tpk")  # {name: float32 array}, CRC, limits and digests checked
	python tpk_loader.py m.tpk  # verify only
Raises TpkError; leaves canonical-form rules to `ticketpack verify`; refuses torch-mt19937.
"""
import hashlib, itertools, json, math, re, struct, sys, zlib
from concurrent.futures import ThreadPoolExecutor
import numpy as np

ONE, M32, u8, i64 = 1 << 16, 0xFFFFFFFF, np.uint8, np.int64
# init rule: (family, numerator, a, b) of section 4; `ticketpack export-loader` fills it in
INITS = {}


class TpkError(Exception):
	pass


def need(ok, msg):
	if not ok:
		raise TpkError(msg)


def isint(v, lo, hi):
	return type(v) is int and lo <= v <= hi


def finite(s):
	need(math.isfinite(float(s)), f"{s} is not finite")
	return float(s)


def strict(kv):
	need(len(dict(kv)) == len(kv), "duplicate key")
	return dict(kv)


def inflate(d, codec, raw):
	need(codec in ("none", "zlib", "zstd"), f"codec {codec!r}")
	try:  # reading at most raw + 1 bytes
		if codec == "zstd":
			import zstandard
			d = zstandard.ZstdDecompressor().stream_reader(d).read(raw + 1)
		elif codec == "zlib":
			d = zlib.decompressobj().decompress(d, raw + 1)
	except Exception as e:  # any decompressor error
		raise TpkError(f"cannot decompress ({e!r})") from None
	need(len(d) == raw, f"not {raw} bytes after {codec}")
	return d


def read(buf):
	# sections 1-3 and 7
	need(buf[:8] == b"\x89TPK\r\n\x1a\n" and len(buf) >= 32, "not a .tpk file")
	ver, hc, flags, hl, raw, pl = struct.unpack_from("<HBBIIQ", buf, 8)
	need(ver == 2, f"format version {ver}, not 2")
	need(hc < 3 and flags == 0, "header codec or flags")
	need(len(buf) == 32 + hl + pl, "file is truncated or has trailing data")
	need(zlib.crc32(buf[:-4]) == int.from_bytes(buf[-4:], "little"), "CRC-32 mismatch")
	need(max(hl, raw) <= 1 << 24, "header over 16 MiB")
	try:
		h = json.loads(inflate(buf[28:28 + hl], ("none", "zlib", "zstd")[hc], raw).decode(),
			object_pairs_hook=strict, parse_float=finite, parse_constant=finite)
		need(isint(h["seed"], 0, M32), "seed")
		need(h["rng"] == "philox4x32-10/v1", f"rng {h['rng']!r} is not supported")
		ts = h["tensors"]
		need(len(ts) <= 100000 and sum(map(check, ts)) <= 1 << 30, "too big")
		need(len({t["name"] for t in ts}) == len(ts), "duplicate tensor name")
		model = canon(h["config"]) + canon(h.get("eval"))  # hashed into model_sha256
	except TpkError as e:
		raise TpkError(f"header: {e}") from None
	except Exception as e:  # any other fault of the header
		raise TpkError(f"header: {e!r}") from None
	return h, model, buf[28 + hl:-4]


def check(t):
	# a tensor entry (sections 2.1, 3, 7): its element count
	name, shape, kind = t["name"], t["shape"], t["kind"]
	need(type(name) is str and 0 < len(name.encode()) <= 1024, f"name {name!r:.80}")
	need(kind in ("plain", "ternary", "int8", "masked"), f"{name}: kind {kind!r}")
	n = math.prod(shape)
	need(type(shape) is list and len(shape) <= 8 and all(isint(d, 0, 1 << 31) for d in shape)
		and (kind in ("plain", "ternary") or shape and (kind == "int8" or n)), f"{name}: shape")
	need(kind != "masked" or mask(t) and t["init"] in INITS and t["scale"] in ("none", "tensor",
		"row"), f"{name}: init or scale")
	need(all(isint(s["raw"], 0, 8 * n + 4096) for s in t["sections"]), f"{name}: raw size")
	return n


def mask(t):
	# (K levels, N, M): K = 0 for `none`, M = 0 unless N:M
	m = re.fullmatch(r"(none)|binary|multibit:([1-9]\d*)|nm:([1-9]\d*):([1-9]\d*)", str(t["mask"]))
	K, N, M = (int(v or 0) for v in m.groups()[1:]) if m else (1, 0, 0)
	need(K <= 256 and (N < M <= 256 and t["shape"][-1] % M == 0 if M else K != 1), f"{t['name']}: bad mask")
	return 0 if m[1] else K or 2, N, M


def digits(v, base, count):  # v's lowest `count` digits in base `base`, lowest first
	return v[:, None] // base ** np.arange(count) % base


def varint(d, pos):
	v = i = 0
	while i < 70:
		v, i, pos = v | (d[pos] & 127) << i, i + 7, pos + 1
		if d[pos - 1] < 128:
			return v, pos
	raise TpkError("bad LEB128")


def rans(d, pos, f, mi):
	# the len(mi) symbols of the stream at d[pos:] (section 5.2.1), symbol i under f[mi[i]]
	L = 1 << d[pos]
	need(L <= 4096 and len(d) >= pos + 1 + 4 * L and (len(d) - pos) % 2, "rans: bad stream")
	x = np.frombuffer(d, "<u4", L, pos + 1).astype(i64)
	w = np.frombuffer(d, "<u2", offset=pos + 1 + 4 * L).astype(i64)
	A, c, n, out, p = f.shape[1], np.cumsum(f, 1) - f, len(mi), np.empty_like(mi), 0
	F, C, tab = f.ravel(), c.ravel(), np.repeat(np.arange(A), f[0])  # slot -> symbol, model 0
	for i in range(0, n, L):
		y, m = x[:n - i], mi[i:i + L]
		slot = y & 0xFFFF
		out[i:i + L] = g = tab[slot] if len(f) == 1 else m * A + (c[m] <= slot[:, None]).sum(1) - 1
		y[:] = F[g] * (y >> 16) + slot - C[g]
		m = y < ONE
		r = int(np.count_nonzero(m))
		need(p + r <= len(w), "rans: stream ends early")
		y[m] = y[m] << 16 | w[p:p + r]
		p += r
	need(p == len(w) and (x == ONE).all(), "rans: stream not used up")
	return out % A


def rows(d, pos, cnt, C):
	# sections 5.2.2-3: rows of C digits, row r under the product model of its counts cnt[r]
	P, B = cnt.shape[1], d[pos]
	need(B in (1, 2, 4, 8) and P ** B <= 256, "rans: bad B")
	dig = digits(np.arange(P ** B), P, B)
	a = 1 << 31
	for j in range(B):
		a = a * ((cnt << 31) // C)[:, dig[:, j]] >> 31
	f = np.maximum(1, (a << 16) // a.sum(1, keepdims=True))
	f[np.arange(len(cnt)), np.argmax(f, 1)] += ONE - f.sum(1)
	sym = rans(d, pos + 1, f, np.repeat(np.arange(len(cnt)), -(-C // B)))
	return dig[sym].reshape(len(cnt), -1)[:, :C]


def rans0(d, shape, n, K, *_):
	cnt, pos = [], 0
	for _ in range(K - 1):
		v, pos = varint(d, pos)
		cnt.append(v)
	need(sum(cnt) <= n, "rans0: counts")
	cnt = np.array(cnt + [n - sum(cnt)], i64)
	v = np.flatnonzero(cnt)  # the present levels
	return v[rows(d, pos, cnt[v][None], n)[0]] if len(v) > 1 else np.repeat(v, cnt[v])


def ransrow(d, shape, *_):
	R, C = shape[0], math.prod(shape[1:])
	lo, pos = varint(d, 0)
	w, nb = d[pos], -(-R * d[pos] // 8)
	b = np.unpackbits(np.frombuffer(d, u8, nb, pos + 1), bitorder="little")[:R * w].reshape(R, w)
	nr = lo + b @ (1 << np.arange(w))
	need(w <= C.bit_length() and nr.max() <= C, "ransrow: bad row counts")
	grid = np.zeros((R, C), u8) + (nr == C)[:, None]
	mix = (nr > 0) & (nr < C)
	if mix.any():
		grid[mix] = rows(d, pos + 1 + nb, np.stack([C - nr[mix], nr[mix]], 1), C)
	return grid


def ransnm(d, shape, n, K, N, M):
	cnm, groups, G = math.comb(M, N), n // M, d[0]
	A = cnm ** G
	need(G and A <= ONE, "ransnm: bad G")
	sym = rans(d, 1, ONE // A + (np.arange(A)[None] < ONE % A), np.zeros(-(-groups // G), i64))
	ones = sorted(itertools.combinations(range(M), N), key=lambda c: c[::-1])  # in rank order
	pat = np.zeros((cnm, M), u8)
	pat[np.arange(cnm)[:, None], ones] = 1
	return pat[digits(sym, cnm, G).reshape(-1)[:groups]].reshape(-1)


def levels(t, enc, d):
	# mask levels or trits + 1 (section 5)
	shape = t["shape"]
	n, (K, N, M) = math.prod(shape), mask(t) if t["kind"] == "masked" else (3, 0, 0)
	need({"bits": K == 2, "planes": t.get("mask", "")[:1] == "m", "trits5": K == 3, "rans0": 1,
		"ransrow": K == 2 and len(shape) > 1, "ransnm": M}.get(enc), f"encoding {enc!r} not allowed")
	if enc in ("bits", "planes"):  # bits: the one plane of a binary mask
		b = np.unpackbits(np.frombuffer(d, u8).reshape(-1, -(-n // 8)), 1, bitorder="little")[:, :n]
		lev = (1 << np.arange(len(b))) @ b
	elif enc == "trits5":
		lev = digits(np.frombuffer(d, u8), 3, 5)
	else:
		lev = {"rans0": rans0, "ransrow": ransrow, "ransnm": ransnm}[enc](d, shape, n, K, N, M)
	return lev.reshape(-1)[:n].reshape(shape).astype(np.float32)


def philox(seed, sid, n):
	# words 0..n-1 of stream `sid` (section 4)
	out = []
	for b0 in range(0, n, 1 << 18):  # blocks of counters, for the cache
		c0 = np.arange(b0 // 4, min(n + 3, b0 + (1 << 18)) // 4, dtype=np.uint64)
		c1, c2, c3, k0, k1 = 0, sid & M32, sid >> 32, seed, 0  # c1 = 0: under 2^30 words
		for _ in range(10):
			p0, p1 = c0 * 0xD2511F53, c2 * 0xCD9E8D57
			c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
			k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
		out.append(np.stack([c0, c1, c2, c3], 1).astype(np.uint32).ravel())
	return np.concatenate(out)[:n]


def frozen(seed, name, shape, init):
	w = philox(seed, int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"), math.prod(shape))
	family, num, a, b = INITS[init]
	c = math.sqrt(num / (a * math.prod(shape[1:]) + b * shape[0]))
	if family == "signed_constant":
		return np.where(w >> 31, -np.float32(c), np.float32(c))
	need(family == "uniform", f"init family {family!r}")
	return ((w >> 8).astype(np.float32) * 2 - (M32 >> 8)) * np.float32(c * 2.0 ** -24)  # odd, < 2^24


def tensor(seed, t, pay):
	# effective weight and tensor_sha256 (section 6)
	name, shape, kind = t["name"], t["shape"], t["kind"]
	S, n, r = {}, math.prod(shape), shape[0] if shape else 1
	try:
		for s in t["sections"]:  # the file's CRC-32 covers them
			S[s["role"]] = s["enc"], inflate(pay[s["offset"]:s["offset"] + s["length"]], s["codec"], s["raw"])

		def v(role, k):  # k values, one per row (or one for all)
			enc, d = S[role]
			dt = {"f16": "<f2", "f32": "<f4", "i8": "i1"}.get(enc)
			need(dt and len(d) == k * int(dt[-1]), f"{role}: enc or length")
			x = np.frombuffer(d, dt).astype(np.float32)
			need(np.isfinite(x).all(), f"{role}: non-finite value")
			return x.reshape([-1] + [1] * (len(shape) - 1))
		if kind == "plain":
			w = v("data", n)
		elif kind == "int8":
			w = v("q", n).reshape(shape) * v("scale", r)
		elif kind == "ternary":
			g = t["gamma_count"]
			need(isint(g, 0, 1 << 31) and g == {"tensor": 1, "row": r, "shard": g}[t["gamma"]]
				and r % max(g, 1) == 0, "gamma_count")
			w = np.repeat(v("gamma", g), r // max(g, 1), 0) * (levels(t, *S["trits"]) - 1)
		else:
			w = frozen(seed, name, shape, t["init"]).reshape(shape)
			if t["mask"] != "none":
				w = w * levels(t, *S["mask"])
			if t["scale"] != "none":
				w = w * v("scale", r if t["scale"] == "row" else 1)
	except KeyError as e:
		raise TpkError(f"{name}: no {e}") from None
	except (TpkError, ValueError, TypeError, IndexError) as e:
		raise TpkError(f"{name}: {e}") from None
	w = np.ascontiguousarray(w, "<f4").reshape(shape)
	h = hashlib.sha256(lp(name.encode()) + struct.pack(f"<I{len(shape)}Q", len(shape), *shape))
	h.update(w)
	return w, h.digest()


def canon(v):
	# section 6.2
	t = type(v)
	if v is None or t is bool:
		return bytes([0 if v is None else 1 + v])
	if t is int:
		return b"\3" + v.to_bytes(8, "little", signed=True)
	if t is float:
		return b"\4" + struct.pack("<d", v)
	if t is str:
		return b"\5" + lp(v.encode())
	items = map(canon, v) if t is list else (lp(k.encode()) + canon(x) for k, x in sorted(v.items()))
	return bytes([6 + (t is dict)]) + struct.pack("<I", len(v)) + b"".join(items)  # code point = UTF-8 order


def lp(b):
	return struct.pack("<I", len(b)) + b


def load(path):
	"""Read, check and regenerate an artifact: {name: float32 array}, in header order."""
	with open(path, "rb") as fh:
		h, model, pay = read(fh.read())
	with ThreadPoolExecutor() as ex:
		out = list(ex.map(lambda t: tensor(h["seed"], t, pay), h["tensors"]))
	wd = hashlib.sha256(b"".join(d for _, d in out))
	need(wd.hexdigest() == h.get("weights_sha256"), "weights_sha256 mismatch")
	md = hashlib.sha256(b"ticketpack/model-sha256/v2\0" + wd.digest() + model)
	need(md.hexdigest() == h.get("model_sha256"), "model_sha256 mismatch")
	return {t["name"]: w for t, (w, _) in zip(h["tensors"], out)}


if __name__ == "__main__":
	try:
		print(f"ok: {len(load(sys.argv[1]))} tensors verified")
	except (TpkError, OSError) as e:
		sys.exit(f"error: {e}")
