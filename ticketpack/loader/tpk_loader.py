"""Reads .tpk artifacts, format versions 1-3 (ticketpack's docs/FORMAT.md): numpy + zstandard.

	tpk_loader.load("m.tpk")  # {name: float32 array}; every MUST rule of FORMAT.md 7.1 checked
	tpk_loader.loads(data)  # the same from the file's bytes
	python tpk_loader.py m.tpk  # verify: exit 0 ok, 1 digest mismatch, 2 usage, 3 refused, 130 Ctrl-C
Refuses (MAY-refuse cases): torch-mt19937 streams, v1's constriction sections (ans0, ansrow, nm).
"""
import os, signal, sys
if __name__ == "__main__":  # Ctrl-C, even during the imports: one line, exit 130
	signal.signal(signal.SIGINT, lambda *_: (sys.stderr.write("error: interrupted\n"), os._exit(130)))
import hashlib, itertools, json, math, re, stat, struct, zlib
from concurrent.futures import ThreadPoolExecutor
import numpy as np

ONE, M32, u8, i64, f32 = 1 << 16, 0xFFFFFFFF, np.uint8, np.int64, np.float32
PHILOX, HEX = "philox4x32-10/v1", re.compile("[0-9a-f]{64}")
# init rule: (family, numerator, a, b) of section 4; `ticketpack export-loader` fills it in
INITS = {}
# the normal family's polynomial, c9 .. c1 (section 4, float32 bit patterns)
NORMAL = np.array([0x436A2C2B, 0xC452B743, 0x449D7861, 0xC47C2672, 0x43E9BDA6, 0xC2FD8B5A, 0x41A51139,
	0xC0214869, 0x40225C21], np.uint32).view(f32)


class TpkError(Exception):
	code = 3  # exit code: 1 digest mismatch, 2 usage, 3 refused artifact


def need(ok, msg, code=3):
	if not ok:
		e = TpkError(msg)
		e.code = code
		raise e


def isint(v, lo, hi):
	return type(v) is int and lo <= v <= hi


def finite(s):
	need(math.isfinite(float(s)), f"{s} is not finite")
	return float(s)


def strict(kv):
	need(len(dict(kv)) == len(kv), "duplicate key")
	return dict(kv)


def inflate(d, codec, raw):
	# section 3: exactly raw bytes; zstd: one frame declaring raw, nothing after
	try:
		if codec == "zstd":
			import zstandard as Z
			need(d[:4] == b"\x28\xb5\x2f\xfd" and Z.frame_content_size(d) == raw, "zstd frame size")
			o = Z.ZstdDecompressor().decompressobj()
			r = o.decompress(d)
			need(o.eof and not o.unused_data, "zstd frame end")
			d = r
		elif codec == "zlib":
			o = zlib.decompressobj()
			r = o.decompress(d, raw + 1)
			need(o.eof and not o.unused_data and not o.unconsumed_tail, "zlib stream end")
			d = r
		else:
			need(codec == "none", f"codec {codec!r}")
	except TpkError:
		raise
	except Exception as e:  # any decompressor error
		raise TpkError(f"cannot decompress ({e!r})") from None
	need(len(d) == raw, f"not {raw} bytes after {codec}")
	return d


def read(buf):
	# sections 1-3 and 7
	need(buf[:8] == b"\x89TPK\r\n\x1a\n" and len(buf) >= 32, "not a .tpk file")
	ver, hc, flags, hl, raw, pl = struct.unpack_from("<HBBIIQ", buf, 8)
	need(ver in (1, 2, 3), f"format version {ver}, not 1, 2 or 3")
	need(hc < 3 and flags == 0, "header codec or flags")
	need(max(hl, raw) <= 1 << 24, "header over 16 MiB")
	need(len(buf) == 32 + hl + pl, "file is truncated or has trailing data")
	need(zlib.crc32(buf[:-4]) == int.from_bytes(buf[-4:], "little"), "CRC-32 mismatch")
	try:
		h = json.loads(inflate(buf[28:28 + hl], ("none", "zlib", "zstd")[hc], raw).decode(),
			object_pairs_hook=strict, parse_float=finite, parse_constant=finite)
		need(isint(h["seed"], 0, M32), "seed")
		rng = h["rng"]
		need(type(rng) is str and (rng == PHILOX or rng.startswith("torch-mt19937-cpu/")), "rng")
		need(type(h["config"]) is dict and type(h["provenance"]) is dict, "config or provenance")
		for k in ("weights_sha256", "model_sha256")[:1 + (ver > 1)]:
			need(type(h[k]) is str and HEX.fullmatch(h[k]), k)
		if "eval" in h:
			e, tok = h["eval"], h["eval"]["tokenizer"]
			sp = tok["kind"] == "sentencepiece"
			need(e.keys() == {"seq_len", "tokenizer"} and isint(e["seq_len"], 1, 1 << 24)
				and tok.keys() == ({"kind", "sha256", "vocab_size"} if sp else {"kind"}) and tok["kind"]
				in ("bytes", "sentencepiece") and (not sp or type(tok["sha256"]) is str and HEX.fullmatch(
				tok["sha256"]) and isint(tok["vocab_size"], 1, 1 << 24)), "eval")
		ts, ext, total = h["tensors"], [], 0
		need(type(ts) is list and len(ts) <= 100000, "tensors")
		for t in ts:
			total += check(t, ver, pl, ext)
			need(total <= 1 << 28, "over 2^28 elements in all")
		need(len({t["name"] for t in ts}) == len(ts), "duplicate tensor name")
		pos = 0
		for o, n in sorted(ext):  # sections tile the payload
			need(o == pos, "payload hole or overlap")
			pos += n
		need(pos == pl, "payload hole")
		need(rng == PHILOX, f"rng {rng!r} is not supported")
		model = canon(h["config"]) + canon(h.get("eval"))  # hashed into model_sha256
	except TpkError as e:
		raise TpkError(f"header: {e}") from None
	except Exception as e:  # any other fault of the header
		raise TpkError(f"header: {e!r:.200}") from None
	return h, model, buf[28 + hl:-4], ver


def check(t, ver, pl, ext):
	# a tensor entry (sections 2.1, 3, 7): its element count
	name, shape, kind = t["name"], t["shape"], t["kind"]
	need(type(name) is str and 0 < len(name.encode()) <= 1024, f"name {name!r:.80}")
	need(kind in ("masked", "plain", "ternary", "int8")[:3 + (ver > 1)], f"{name}: kind {kind!r}")
	need(type(shape) is list and len(shape) <= 8 and all(isint(d, 0, 1 << 31) for d in shape), f"{name}: shape")
	n = math.prod(shape)
	need(ver > 2 and kind == "masked" or not {"layout", "init_std"} & t.keys(), f"{name}: layout or init_std")
	if kind == "plain":
		roles = {"data": n}
	elif kind == "int8":
		need(shape, f"{name}: rank 0")
		roles = {"q": "i8", "scale": shape[0]}
	elif kind == "ternary":
		g, mode = t["gamma_count"], t["gamma"]
		need(type(g) is int and (g == 1 if mode == "tensor" else shape and (g == shape[0] if mode == "row" else
			mode == "shard" and 1 <= g <= shape[0] and shape[0] % g == 0)), f"{name}: gamma")
		roles = {"trits": "trits", "gamma": g}
	else:
		K, N, M, mk = mask(t, ver)
		fam = INITS[t["init"]][0]
		lay = t.get("layout", "out_in")
		need(shape and n and (fam != "normal" or ver > 2) and t["scale"] in ("none", "tensor", "row"), f"{name}: init or scale")
		need(lay == "out_in" or lay == "in_out" and len(shape) == 2 or lay == "conv" and 3 <= len(shape) <= 5, f"{name}: layout")
		s = t.get("init_std")
		need((t["init"] == "normal_std") == (s is not None) and (s is None or type(s) in (int, float) and 0 < s <= 1e6), f"{name}: init_std")
		roles = {"mask": mk} if mk != "none" else {}
		if t["scale"] != "none":
			roles["scale"] = shape[0] if t["scale"] == "row" else 1
	ss = t["sections"]
	need(type(ss) is list and len(ss) == len(roles) and {s["role"] for s in ss} == roles.keys(), f"{name}: sections")
	for s in ss:
		enc, c = s["enc"], roles[s["role"]]
		need(s["codec"] in ("none", "zlib", "zstd") and all(isint(s[k], 0, pl) for k in ("offset", "length"))
			and s["offset"] + s["length"] <= pl and isint(s["crc"], 0, M32), f"{name}: section")
		if type(c) is int:  # c values, 2 or 4 bytes each
			ok = enc in ("f16", "f32") and isint(s["raw"], 0, 1 << 64) and s["raw"] == c * int(enc[1:]) // 8
		elif c == "i8":
			ok = enc == "i8" and s["raw"] == n and type(s["raw"]) is int
		else:
			ok = enc in legal(ver, c) and isint(s["raw"], 0, 8 * n + 4096)
		need(ok, f"{name}: section {s['role']!r}: encoding or raw size")
		ext.append((s["offset"], s["length"]))
	return n


def legal(ver, c):
	# section 3: legal encodings of a symbol section holding c
	if ver == 1:
		return ("bits", "planes", "trits5", "ans0", "ansrow", "nm")
	return {"binary": "bits rans0 ransrow", "nm": "bits rans0 ransrow ransnm", "multibit": "planes rans0",
		"signed": "planes rans0", "trits": "trits5 rans0"}[c].split()


def mask(t, ver):
	# (symbols K, N, M, kind) of a masked tensor's mask (section 2.1)
	m = re.fullmatch(r"(binary|none)|(multibit|signed):([1-9]\d{0,2})|nm:([1-9]\d{0,2}):([1-9]\d{0,2})", t["mask"])
	need(m, f"{t['name']}: mask")
	kind, K, N, M = m[1] or m[2] or "nm", int(m[3] or 2), int(m[4] or 0), int(m[5] or 0)
	need(kind in ("binary", "multibit", "nm", "none", "signed")[:3 + (ver > 1) + (ver > 2)] and (
		2 <= K <= (256 if kind == "multibit" else 128)) and (not M or N < M <= 256 and t["shape"][-1] % M == 0), f"{t['name']}: mask")
	return (2 * K - 1 if kind == "signed" else K), N, M, kind


def digits(v, base, count):  # v's lowest `count` digits in base `base`, lowest first
	return v[:, None] // base ** np.arange(count) % base


def varint(d, pos):
	v = i = 0
	while i < 70:
		b = d[pos]
		v, i, pos = v | (b & 127) << i, i + 7, pos + 1
		if b < 128:
			need(b or i == 7, "LEB128 not minimal")
			return v, pos
	raise TpkError("bad LEB128")


def rans(d, pos, f, mi, v3):
	# the len(mi) symbols of the stream at d[pos:] (section 5.2.1), symbol i under model f[mi[i]]
	e, S = d[pos], len(mi)
	L, (nm, A) = 1 << e, f.shape
	need(e <= 12 and len(d) >= pos + 1 + 4 * L and (len(d) - pos) % 2, "rans: bad stream")
	need(not v3 or L >= min(4096, 1 << (-(-S // 4096) - 1).bit_length()), "rans: fewer lanes than v3's minimum")
	x = np.frombuffer(d, "<u4", L, pos + 1).astype(i64)
	w = np.frombuffer(d, "<u2", offset=pos + 1 + 4 * L).astype(i64)
	need((x >= ONE).all(), "rans: initial state")
	c = np.cumsum(f, 1) - f
	F, C, key, out, p = f.ravel(), c.ravel(), (c + (np.arange(nm) << 16)[:, None]).ravel(), np.empty(S, np.int32), 0
	tab = np.repeat(np.arange(A), f[0])  # slot -> symbol of model 0
	for i in range(0, S, L):
		y = x[:S - i]  # a view: the lanes this round
		slot = y & 0xFFFF
		out[i:i + L] = g = tab[slot] if nm == 1 else np.searchsorted(key, mi[i:i + L] << 16 | slot, "right") - 1
		y[:] = F[g] * (y >> 16) + slot - C[g]
		m = y < ONE
		r = int(np.count_nonzero(m))
		need(p + r <= len(w), "rans: stream ends early")
		y[m] = y[m] << 16 | w[p:p + r]
		p += r
	need(p == len(w) and (x == ONE).all(), "rans: stream not used up")
	return out % A


def rows(d, pos, cnt, C, v3):
	# sections 5.2.2-3: the digits of rows of C elements, row r under the product model of counts cnt[r]
	R, P, B = len(cnt), cnt.shape[1], d[pos]
	need(B in (1, 2, 4, 8) and P ** B <= 256, "rans: bad B")
	dig, Q = digits(np.arange(P ** B), P, B).astype(u8), -(-C // B)
	u, inv = np.unique(cnt, axis=0, return_inverse=True)  # rows of equal counts share a model
	a = 1 << 31
	for j in range(B):
		a = a * ((u << 31) // C)[:, dig[:, j]] >> 31
	f = np.maximum(1, (a << 16) // a.sum(1, keepdims=True))
	f[np.arange(len(u)), np.argmax(f, 1)] += ONE - f.sum(1)
	mi = np.repeat(inv.ravel(), Q) if len(u) > 1 else np.broadcast_to(0, R * Q)  # model of each symbol
	g = dig[rans(d, pos + 1, f, mi, v3)].reshape(R, -1)
	need((g[:, C:] == np.argmax(cnt, 1)[:, None]).all(), "rans: padding")
	return g[:, :C]


def rans0(d, shape, n, K, N=0, M=0, v3=0):
	cnt, pos = [], 0
	for _ in range(K - 1):
		v, pos = varint(d, pos)
		cnt.append(v)
	need(sum(cnt) <= n, "rans0: counts")
	cnt = np.array(cnt + [n - sum(cnt)], i64)
	v = np.flatnonzero(cnt)  # the present levels
	if len(v) < 2:
		need(len(d) == pos, "rans0: bytes after the counts")
		return np.repeat(v, cnt[v])
	out = rows(d, pos, cnt[v][None], n, v3)[0]
	need((np.bincount(out, minlength=len(v)) == cnt[v]).all(), "rans0: counts differ")
	return out if v[-1] == len(v) - 1 else v.astype(u8)[out]  # digit d is level v[d]


def ransrow(d, shape, *a, v3=0):
	R, C = shape[0], math.prod(shape[1:])
	lo, pos = varint(d, 0)
	w, nb = d[pos], -(-R * d[pos] // 8)
	b = np.unpackbits(np.frombuffer(d, u8, nb, pos + 1), bitorder="little")
	off = b[:R * w].reshape(R, w) @ (1 << np.arange(w))
	nr, pos = lo + off, pos + 1 + nb
	need(w <= C.bit_length() and not b[R * w:].any() and nr.max() <= C and off.min() == 0
		and int(off.max()).bit_length() == w, "ransrow: bad row counts")
	grid = np.zeros((R, C), u8) + (nr == C)[:, None]
	mix = (nr > 0) & (nr < C)
	if mix.any():
		grid[mix] = g = rows(d, pos, np.stack([C - nr[mix], nr[mix]], 1), C, v3)
		need((g.sum(1) == nr[mix]).all(), "ransrow: row counts differ")
	else:
		need(len(d) == pos, "ransrow: bytes after the counts")
	return grid


def ransnm(d, shape, n, K, N, M, v3=0):
	cnm, groups = math.comb(M, N), n // M
	need(M <= 64 and cnm <= ONE, "ransnm: C(M, N) over 65536")
	ones = sorted(itertools.combinations(range(M), N), key=lambda c: c[::-1])  # in rank order
	pat = np.zeros((cnm, M), u8)
	pat[np.arange(cnm)[:, None], ones] = 1
	G = d[0]
	A = cnm ** G
	need(G and A <= ONE, "ransnm: bad G")
	r = digits(rans(d, 1, ONE // A + (np.arange(A)[None] < ONE % A), np.broadcast_to(0, -(-groups // G)), v3), cnm, G).ravel()
	need(not r[groups:].any(), "ransnm: padding")
	return pat[r[:groups]]


def levels(t, enc, d, v3):
	# mask levels or trits (section 5), as float32
	shape = t["shape"]
	n, (K, N, M, kind) = math.prod(shape), mask(t, 3) if t["kind"] == "masked" else (3, 0, 0, "trits")
	need({"bits": K == 2, "trits5": K == 3, "ransrow": len(shape) > 1}.get(enc, 1),
		f"encoding {enc!r} does not fit")
	need(enc[0] not in "an", f"v1 encoding {enc!r} (constriction) is not supported")
	if enc in ("bits", "planes"):  # bits: the one plane of a binary mask
		P, nb = (K - 1).bit_length(), -(-n // 8)
		need(len(d) == P * nb, "bit planes: length")
		b = np.unpackbits(np.frombuffer(d, u8).reshape(P, nb), 1, bitorder="little")
		need(not b[:, n:].any(), "bit planes: padding")
		lev = sum(b[p, :n] << p for p in range(P))  # uint8: levels < 256
		need(lev.max(initial=0) < K, "level out of range")
	elif enc == "trits5":
		a = np.frombuffer(d, u8)
		need(len(a) == -(-n // 5) and a.max(initial=0) <= 242 and (n < 1 or a[-1] < 3 ** (n - 5 * len(a) + 5)), "trits5")
		lev = digits(a, 3, 5).ravel()[:n]
	else:
		lev = {"rans0": rans0, "ransrow": ransrow, "ransnm": ransnm}[enc](d, shape, n, K, N, M, v3=v3).ravel()
	if M:  # section 3: exactly N kept in every group
		need((lev.reshape(-1, M).sum(1) == N).all(), "N:M group does not keep N")
	return lev.reshape(shape).astype(f32) - (K // 2 if kind in ("signed", "trits") else 0)


def philox(seed, sid, n):
	# words 0..n-1 of stream `sid` (section 4)
	out = []
	for b0 in range(0, n, 1 << 18):  # blocks of counters, for the cache
		c0 = np.arange(b0 // 4, min(n + 3, b0 + (1 << 18)) // 4, dtype=np.uint64)
		c1, c2, c3, k0, k1 = 0, sid & M32, sid >> 32, seed, 0  # c1 = 0: under 2^34 words
		for _ in range(10):
			p0, p1 = c0 * 0xD2511F53, c2 * 0xCD9E8D57
			c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
			k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
		out.append(np.stack([c0, c1, c2, c3], 1).astype(np.uint32).ravel())
	return np.concatenate(out or [np.zeros(0, np.uint32)])[:n]


def frozen(seed, name, shape, init, layout="out_in", std=None):
	# the frozen weight (section 4), flat
	n, d0, rest = math.prod(shape), shape[0], math.prod(shape[1:])
	fi, fo = {"out_in": (rest, d0), "in_out": (d0, rest), "conv": (rest, d0 * rest // (shape + [1])[1])}[layout]
	family, num, a, b = INITS[init]
	c = std if a == b == 0 else math.sqrt(num / (a * fi + b * fo))  # normal_std: the entry's init_std
	w = philox(seed, int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"), n)
	if family == "signed_constant":
		return np.where(w >> 31, -f32(c), f32(c))
	if family == "normal":  # Horner in float32, one multiply and one add per step (no FMA)
		d = (w & 0xFFFF).astype(i64) - (w >> 16)
		a, h = np.abs(d).astype(f32) * f32(2.0 ** -16), f32(NORMAL[0])
		for k in NORMAL[1:]:
			h = h * a + f32(k)
		m = h * a * f32(c)
		return np.where(d < 0, -m, m)
	need(family == "uniform", f"init family {family!r}")
	return ((w >> 8).astype(f32) * 2 - (M32 >> 8)) * f32(c * 2.0 ** -24)  # odd, < 2^24


def tensor(*a):
	with np.errstate(all="ignore"):  # an overflow is refused (M25), not warned about
		return weight(*a)


def weight(seed, t, pay, v3):
	# effective weight and its digest record (section 6)
	name, shape, kind = t["name"], t["shape"], t["kind"]
	S, n, r = {}, math.prod(shape), shape[0] if shape else 1
	try:
		for s in t["sections"]:
			d = pay[s["offset"]:s["offset"] + s["length"]]
			need(zlib.crc32(d) == s["crc"], f"section {s['role']}: CRC-32 mismatch")
			S[s["role"]] = s["enc"], inflate(d, s["codec"], s["raw"])

		def v(role):  # values, one per row (or one for all)
			enc, d = S[role]
			x = np.frombuffer(d, {"f16": "<f2", "f32": "<f4", "i8": "i1"}[enc]).astype(f32)
			need(np.isfinite(x).all(), f"{role}: non-finite value")
			return x.reshape([-1] + [1] * (len(shape) - 1))
		if kind == "plain":
			w = v("data")
		elif kind == "int8":
			w = v("q").reshape(shape) * v("scale")
		elif kind == "ternary":
			w = np.repeat(v("gamma"), r // t["gamma_count"], 0) * levels(t, *S["trits"], v3)
		else:
			w = frozen(seed, name, shape, t["init"], t.get("layout", "out_in"), t.get("init_std")).reshape(shape)
			if "mask" in S:
				w = w * levels(t, *S["mask"], v3)
			if "scale" in S:
				w = w * v("scale")
	except (TpkError, ValueError, TypeError, IndexError, KeyError) as e:
		raise TpkError(f"{name}: {e}") from None
	w = np.ascontiguousarray(w, "<f4").reshape(shape)
	need(np.isfinite(w).all(), f"{name}: non-finite effective weight")
	return w, rec(name, shape) + w.tobytes()


def rec(name, shape):
	return lp(name.encode()) + struct.pack(f"<I{len(shape)}Q", len(shape), *shape)


def canon(v):
	# section 6.2, without recursion: any depth the JSON parser accepted
	out, todo = [], [v]
	while todo:
		v = todo.pop()
		t = type(v)
		if t is bytes:
			out.append(v)
		elif v is None or t is bool:
			out.append(bytes([0 if v is None else 1 + v]))
		elif t is int:
			out.append(b"\3" + v.to_bytes(8, "little", signed=True))
		elif t is float:
			out.append(b"\4" + struct.pack("<d", v))
		elif t is str:
			out.append(b"\5" + lp(v.encode()))
		else:
			out.append(bytes([6 + (t is dict)]) + struct.pack("<I", len(v)))
			todo += reversed(v if t is list else [x for k in sorted(v) for x in (lp(k.encode()), v[k])])  # UTF-8 order
	return b"".join(out)


def lp(b):
	return struct.pack("<I", len(b)) + b


def readfile(path):
	# a regular file only, read no further than its declared size and the 4 GiB cap
	try:
		fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
	except OSError as e:
		need(0, f"cannot open {path!r}: {e.strerror}", 2)
	st = os.fstat(fd)
	if not stat.S_ISREG(st.st_mode):  # a FIFO, a device (/dev/zero), a directory: never read
		os.close(fd)
		need(0, f"{path!r} is not a regular file", 2)
	with os.fdopen(fd, "rb") as fh:
		need(st.st_size <= 1 << 32, "file over 4 GiB")
		buf = fh.read(28)
		want = 32 + sum(struct.unpack_from("<I4xQ", buf, 12)) if len(buf) == 28 else 0
		return buf + fh.read(max(0, min(want, st.st_size) - 27))


def load(path):
	"""Read, check and regenerate an artifact: {name: float32 array}, in header order."""
	return loads(readfile(path))


def loads(buf):
	"""load() of an artifact's bytes."""
	h, model, pay, ver = read(buf)
	with ThreadPoolExecutor() as ex:
		out = list(ex.map(lambda t: tensor(h["seed"], t, pay, ver > 2), h["tensors"]))
	if ver == 1:
		wd = hashlib.sha256(b"".join(r for _, r in out))
	else:
		wd = hashlib.sha256(b"".join(hashlib.sha256(r).digest() for _, r in out))
	need(wd.hexdigest() == h["weights_sha256"], "weights_sha256 mismatch", 1)
	md = hashlib.sha256(b"ticketpack/model-sha256/v2\0" + wd.digest() + model)
	need(ver < 2 or md.hexdigest() == h["model_sha256"], "model_sha256 mismatch", 1)
	return {t["name"]: w for t, (w, _) in zip(h["tensors"], out)}


if __name__ == "__main__":
	if len(sys.argv) != 2:
		sys.exit(print("usage: python tpk_loader.py FILE.tpk", file=sys.stderr) or 2)
	try:
		print(f"ok: {len(load(sys.argv[1]))} tensors verified")
	except TpkError as e:
		print("error:", "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(e)), file=sys.stderr)  # one line
		sys.exit(e.code)
