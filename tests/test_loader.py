"""The standalone loader (`ticketpack export-loader`): one file, numpy + zstandard, reads
format versions 1-3.

It is written from docs/FORMAT.md alone; these tests hold it to the library: same rANS
decodes, same Philox bits, and (on every conformance file, in a child process where importing
torch or numba raises) the same weights and digests.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import re
import struct
import zlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ticketpack import api
from ticketpack.errors import TicketpackError
from ticketpack.cli.main import main
from ticketpack.format import philox, rans
from ticketpack.format.container import assemble, check_digests, decode_artifact, encode_artifact, parse_artifact
from ticketpack.format.constants import INIT_RULES, PG_RNG_PREFIX
from ticketpack.format.digest import tensor_sha256
from ticketpack.format.maskspec import MaskSpec
from ticketpack.format.tensors import Int8Tensor, MaskedTensor, PlainTensor, TernaryTensor, Ticket

from tests.tiny import HAVE_V1_EXTRA

CONFORMANCE = Path(__file__).parent / "conformance"
STDLIB_AND_NUMPY = set(sys.stdlib_module_names) | {"numpy", "zstandard"}


@pytest.fixture(scope="module", params=["readable", "compact"])
def compact(request) -> bool:
    # every test of the emitted loader runs on both forms: the source and its self-extracting form
    return request.param == "compact"


@pytest.fixture(scope="module")
def loader_path(compact, tmp_path_factory):
    path = tmp_path_factory.mktemp("loader") / "tpk_loader.py"
    flags = ["--compact"] if compact else []
    result = CliRunner().invoke(main, ["export-loader", "-o", str(path), *flags])
    assert result.exit_code == 0, result.output
    return path


def source_run(loader_path: Path, compact: bool) -> str:
    """The Python source the emitted file runs: the file itself, or what its compact form unpacks."""
    import base64
    import lzma

    if not compact:
        return loader_path.read_text(encoding="utf-8")
    packed = re.search(rb"b85decode\(b'([^']*)'\)", loader_path.read_bytes())[1]
    return lzma.decompress(base64.b85decode(packed), lzma.FORMAT_RAW, filters=api.LOADER_LZMA).decode()


@pytest.fixture(scope="module")
def loader(loader_path):
    spec = importlib.util.spec_from_file_location("tpk_loader_under_test", loader_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_loader_writes_the_packaged_file(loader_path, tmp_path, compact):
    assert loader_path.read_bytes() == api.loader_source(compact)
    info = api.export_loader(tmp_path / "again.py")
    assert info["bytes"] == len(api.loader_source()) == (tmp_path / "again.py").stat().st_size
    result = CliRunner().invoke(main, ["export-loader", "-o", str(tmp_path / "no" / "x.py")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "no").exists()


def test_size_counts_the_loader_as_code(loader_path, compact):
    artifact = CONFORMANCE / "binary-rans0.tpk"
    result = CliRunner().invoke(main, ["size", str(artifact), "--code", str(loader_path), "--json"])
    report = json.loads(result.stdout)
    code = len(api.loader_source(compact))
    assert report["code_bytes"] == code == loader_path.stat().st_size
    assert report["total_bytes"] == artifact.stat().st_size + code


def test_loader_imports_only_the_standard_library_numpy_and_zstandard(loader_path, compact):
    tree = ast.parse(source_run(loader_path, compact))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported <= STDLIB_AND_NUMPY


def decode(loader, decoder):
    """Run one of the loader's decoders (a generator yielding its rANS stream) to its levels."""
    return decoder


@pytest.mark.parametrize("K", [2, 3, 7, 256])
@pytest.mark.parametrize("n", [1, 9, 5003])
def test_rans0_decodes_what_the_core_encodes(loader, K, n):
    gen = np.random.default_rng(K * n)
    for levels in (gen.integers(0, K, n), np.minimum(gen.geometric(0.7, n) - 1, K - 1),
                   np.full(n, K - 1)):
        levels = levels.astype(np.uint8)
        assert np.array_equal(decode(loader, loader.rans0(rans.encode_rans0(levels, K), [n], n, K)), levels)


@pytest.mark.parametrize("shape", [(3, 8), (40, 300), (1, 1), (7, 2, 3)])
def test_ransrow_decodes_what_the_core_encodes(loader, shape):
    gen = np.random.default_rng(len(shape))
    bits = (gen.random(shape) < gen.random((shape[0],) + (1,) * (len(shape) - 1))).astype(np.uint8)
    bits[0] = 0
    bits[-1] = 1 if shape[0] > 2 else bits[-1]
    data = rans.encode_ransrow(bits.reshape(shape[0], -1))
    assert np.array_equal(decode(loader, loader.ransrow(data, list(shape))).reshape(shape), bits)


@pytest.mark.parametrize("N,M", [(2, 4), (4, 8), (1, 16), (3, 7), (1, 2)])
def test_ransnm_decodes_what_the_core_encodes(loader, N, M):
    gen = np.random.default_rng(M)
    groups = np.zeros((60, M), np.uint8)
    for g in groups:
        g[gen.choice(M, N, replace=False)] = 1
    levels = groups.reshape(10, 6 * M)
    data = rans.encode_ransnm(levels, N, M)
    assert np.array_equal(decode(loader, loader.ransnm(data, list(levels.shape), levels.size, 2, N, M)).reshape(levels.shape), levels)


def test_loader_refuses_a_broken_rans_stream(loader):
    levels = np.random.default_rng(0).integers(0, 2, 4000).astype(np.uint8)
    data = rans.encode_rans0(levels, 2)
    for bad in (data[:-2], data + b"\0\0", data[:-1] + bytes([data[-1] ^ 1])):
        with pytest.raises(loader.TpkError):
            decode(loader, loader.rans0(bad, [len(levels)], len(levels), 2))


@pytest.mark.parametrize("rule", list(INIT_RULES))
@pytest.mark.parametrize("shape", [(64, 33), (5, 3, 2), (17,), (1, 1)])
def test_philox_weights_match_the_core_bit_for_bit(loader, rule, shape):
    std = 0.02 if rule == "normal_std" else None
    ours = loader.frozen(123456789, "blocks.0.mlp.fc.weight", list(shape), rule, "out_in", std).reshape(shape)
    core = np.asarray(philox.frozen_weight(123456789, "blocks.0.mlp.fc.weight", shape, rule, init_std=std))
    assert ours.dtype == np.float32 and ours.shape == shape
    assert np.array_equal(ours.view(np.uint32), core.view(np.uint32))


# --- the emitted file on real artifacts, in a child process without torch, numba or ticketpack ---

CHILD = """
import hashlib, json, struct, sys
import numpy as np

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "numba", "ticketpack"):
            raise ImportError(name + " is blocked in this test")

sys.meta_path.insert(0, _Blocked())
sys.path.insert(0, LOADER_DIR)
import tpk_loader

def record_sha256(name, a):  # FORMAT.md 6.1, computed here from what load() returned
    b = name.encode()
    head = struct.pack(f"<I{len(b)}sI{a.ndim}Q", len(b), b, a.ndim, *a.shape)
    return hashlib.sha256(head + a.astype("<f4").tobytes()).hexdigest()

out = {}
for i, path in enumerate(PATHS):
    try:
        weights = tpk_loader.load(path)
    except tpk_loader.TpkError as e:
        out[path] = {"error": str(e)}
        continue
    np.savez(f"{OUT_DIR}/{i}.npz", **{f"t{j}": a for j, a in enumerate(weights.values())})
    out[path] = {"names": list(weights), "digests": [record_sha256(k, a) for k, a in weights.items()],
                 "npz": f"{OUT_DIR}/{i}.npz"}
print(json.dumps(out))
"""


def run_blocked(loader_path: Path, paths: list[Path], out_dir: Path) -> dict:
    code = (f"LOADER_DIR = {str(loader_path.parent)!r}\nPATHS = {[str(p) for p in paths]!r}\n"
            f"OUT_DIR = {str(out_dir)!r}\n" + CHILD)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _nm(gen, rows: int, cols: int, n: int, m: int) -> np.ndarray:
    groups = np.zeros((rows * cols // m, m), np.uint8)
    for g in groups:
        g[gen.choice(m, n, replace=False)] = 1
    return groups.reshape(rows, cols)


def every_kind_ticket() -> Ticket:
    """One tensor per kind x mask x scale / gamma mode, sized so that `auto` picks each rANS coding."""
    gen = np.random.default_rng(5)
    row_density = gen.random((96, 1)) ** 3
    row_density[:2] = [[0], [1]]  # an all-zero and an all-one row
    trits = lambda shape, p: ((gen.random(shape) < p) * gen.choice([-1, 1], shape)).astype(np.int8)  # noqa: E731
    return Ticket(seed=99, config={"adapter_rank": 2}, eval={"seq_len": 64, "tokenizer": {"kind": "bytes"}},
                  tensors=[
        MaskedTensor("rows", (96, 200), "xavier_uniform", MaskSpec.parse("binary"),
                     (gen.random((96, 200)) < row_density).astype(np.uint8),
                     np.linspace(0.5, 2, 96).astype(np.float16)),
        MaskedTensor("sparse", (300, 64), "he_uniform", MaskSpec.parse("binary"),
                     (gen.random((300, 64)) < 0.07).astype(np.uint8), np.array(1.5, np.float16)),
        MaskedTensor("levels", (64, 96), "signed_constant_xavier", MaskSpec.parse("multibit:5"),
                     np.minimum(gen.geometric(0.5, (64, 96)) - 1, 4).astype(np.uint8), None),
        MaskedTensor("nm24", (64, 128), "signed_constant_he", MaskSpec.parse("nm:2:4"),
                     _nm(gen, 64, 128, 2, 4), None),
        MaskedTensor("nm18", (4, 4, 64), "xavier_uniform", MaskSpec.parse("nm:1:8"),
                     _nm(gen, 16, 64, 1, 8).reshape(4, 4, 64), None),
        MaskedTensor("vector", (33,), "he_uniform", MaskSpec.parse("binary"),
                     (gen.random(33) < 0.5).astype(np.uint8), None),
        MaskedTensor("backbone", (6, 8), "he_uniform", MaskSpec.parse("none"), None,
                     np.linspace(0.5, 2, 6).astype(np.float16)),
        MaskedTensor("frozen_only", (5, 4, 3), "xavier_uniform", MaskSpec.parse("none"), None, None),
        Int8Tensor("backbone.adapter_a", gen.integers(-128, 128, (2, 8), dtype=np.int8),
                   np.array([0.01, -0.02], np.float16)),
        TernaryTensor("ternary_tensor", trits((40, 50), 0.6), np.array(0.3, np.float16)),
        TernaryTensor("ternary_row", trits((12, 50), 0.6), np.linspace(-1, 1, 12).astype(np.float16)),
        TernaryTensor("ternary_shard", trits((16, 300), 0.1), np.array([0.5, -0.25, 2, 1], np.float16)),
        PlainTensor("plain16", np.array([1.0, -2.5, 3.25], np.float16)),
        PlainTensor("plain32", np.array([[1e-30, -2.5], [3.25, 7]], np.float32)),
        PlainTensor("scalar", np.array(2.0, np.float16)),
    ])


V2_ENCODINGS = {"f16", "f32", "i8", "bits", "planes", "trits5", "rans0", "ransrow", "ransnm"}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> list[Path]:
    """Every kind and encoding under every codec, then the conformance files."""
    tmp = tmp_path_factory.mktemp("artifacts")
    paths, seen = [], set()
    for codec in ("auto", "zstd", "zlib", "none"):
        path = tmp / f"every_kind_{codec}.tpk"
        path.write_bytes(encode_artifact(every_kind_ticket(), codec=codec))
        seen |= {s["enc"] for t in parse_artifact(path.read_bytes()).tensors for s in t["sections"]}
        paths.append(path)
    assert seen == V2_ENCODINGS  # the files below exercise every encoding of version 2
    conformance = sorted(CONFORMANCE.glob("*.tpk"))
    assert len(conformance) >= 40  # FORMAT.md section 9's reference files
    return paths + conformance


def test_emitted_loader_reads_every_artifact_without_torch(loader_path, artifacts, tmp_path):
    got = run_blocked(loader_path, artifacts, tmp_path)
    for path in artifacts:
        entry = got[str(path)]
        rng = parse_artifact(path.read_bytes()).header["rng"]
        if rng.startswith(PG_RNG_PREFIX):  # needs torch's generator: refused, saying why
            assert rng in entry["error"] and "not supported" in entry["error"]
            continue
        assert "error" not in entry, (path.name, entry)
        info = parse_artifact(path.read_bytes())
        weights, digests = check_digests(decode_artifact(info), info.header, info.version)
        assert entry["names"] == [t["name"] for t in info.tensors] == list(weights)
        assert entry["digests"] == [tensor_sha256(k, v).hex() for k, v in weights.items()]
        with np.load(entry["npz"]) as ours:
            for j, (name, ref) in enumerate(weights.items()):
                a = ours[f"t{j}"]
                assert a.dtype == np.float32 and a.shape == ref.shape, name
                assert np.array_equal(a.view(np.uint32), np.asarray(ref, np.float32).view(np.uint32)), name
        expected = path.with_suffix(".json")
        if expected.exists():
            assert entry["digests"] == expected_digests(json.loads(expected.read_text()), entry["names"])


def expected_digests(doc: dict, names: list[str]) -> list[str]:
    """The per-tensor SHA-256 listed by a conformance file's JSON, in header order."""
    tensors = doc["tensors"]
    if isinstance(tensors, dict):
        return [tensors[n] if isinstance(tensors[n], str) else tensors[n]["tensor_sha256"] for n in names]
    return [t["tensor_sha256"] for t in tensors]


def _reseal(data: bytes, edit) -> bytes:
    info = parse_artifact(data)
    edit(info.header)
    return assemble(info.header, info.payload, "zstd", info.version)


def _corrupted(good: bytes, tmp: Path) -> dict[str, tuple[Path, str]]:
    """Damaged or unsupported files and the error each must give."""
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10

    def other_weights(h):
        h["weights_sha256"] = "0" * 64

    def other_config(h):
        h["config"]["adapter_rank"] = 3

    def other_rng(h):
        h["rng"] = PG_RNG_PREFIX + "2.13.0"

    def unknown_kind(h):
        h["tensors"][-1]["kind"] = "float8"

    cases = {
        "crc": (bytes(flipped), "CRC-32 mismatch"),
        "truncated": (good[:-1], "truncated"),
        "trailing": (good + b"\0", "trailing"),
        "weights": (_reseal(good, other_weights), "weights_sha256 mismatch"),
        "model": (_reseal(good, other_config), "model_sha256 mismatch"),
        "rng": (_reseal(good, other_rng), PG_RNG_PREFIX + "2.13.0"),
        "kind": (_reseal(good, unknown_kind), "kind"),
        "version": (good[:8] + b"\x04" + good[9:], "format version 4"),
        "magic": (b"PK" + good[2:], "not a .tpk file"),
    }
    out = {}
    for key, (data, message) in cases.items():
        (tmp / f"{key}.tpk").write_bytes(data)
        out[key] = (tmp / f"{key}.tpk", message)
    return out


def test_emitted_loader_refuses_damaged_files(loader_path, artifacts, tmp_path):
    cases = _corrupted(artifacts[0].read_bytes(), tmp_path)
    got = run_blocked(loader_path, [p for p, _ in cases.values()], tmp_path)
    for key, (path, message) in cases.items():
        assert message in got[str(path)].get("error", ""), (key, got[str(path)])


def test_emitted_loader_command_line(loader_path, artifacts, tmp_path):
    ok = subprocess.run([sys.executable, str(loader_path), str(artifacts[0])], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith(f"ok: {len(every_kind_ticket().tensors)} tensors")
    bad = tmp_path / "bad.tpk"
    bad.write_bytes(artifacts[0].read_bytes()[:-3])
    out = subprocess.run([sys.executable, str(loader_path), str(bad)], capture_output=True, text=True)
    assert out.returncode == 3 and out.stderr.strip().count("\n") == 0 and "truncated" in out.stderr


def test_loader_stays_small(loader_path, compact):
    # what a parameter-golf entrant ships: the compact form at most 12,000 bytes (issues 14, 26);
    # the readable source, which enforces every MUST rule of FORMAT.md 7.1 for versions 1-3, 20,000
    assert loader_path.stat().st_size <= (12_000 if compact else 20_000)


def test_both_forms_run_the_same_source(loader_path, compact):
    assert source_run(loader_path, compact).encode() == api.loader_source()


def test_loader_command_line_usage_devices_and_ctrl_c(loader_path, tmp_path):
    import os
    import signal
    import time

    run = lambda *args: subprocess.run([sys.executable, str(loader_path), *args],  # noqa: E731
                                       capture_output=True, text=True, timeout=60)
    for args in ((), ("a.tpk", "b.tpk")):
        out = run(*args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "usage" in out.stderr
    fifo = tmp_path / "fifo.tpk"
    os.mkfifo(fifo)  # opening it for reading would block without a writer: refused before
    for path, why in ((str(fifo), "not a regular file"), ("/dev/zero", "not a regular file"),
                      (str(tmp_path), "not a regular file"), (str(tmp_path / "none.tpk"), "cannot open")):
        out = run(path)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and why in out.stderr, (path, out.stderr)
    # Ctrl-C: one line, exit 130, no traceback (a big ticket keeps the loader busy)
    big = tmp_path / "big.tpk"
    levels = np.random.default_rng(0).integers(0, 2, (4096, 4096)).astype(np.uint8)
    ticket = Ticket(seed=1, config={}, tensors=[MaskedTensor("w", (4096, 4096), "he_uniform",
                                                             MaskSpec.parse("binary"), levels, None)])
    big.write_bytes(encode_artifact(ticket, codec="zstd"))
    proc = subprocess.Popen([sys.executable, str(loader_path), str(big)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.time() + 30  # the handler is armed before numpy loads: wait for numpy
    while time.time() < deadline and proc.poll() is None and "_multiarray_umath" not in maps.read_text():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "error: interrupted\n", (proc.returncode, err)


def test_loader_accepts_any_json_depth_the_library_accepts(loader, tmp_path):
    from ticketpack.format.container import load_artifact

    for depth in (600, 900):
        config = {"deep": json.loads("[" * depth + "]" * depth)}
        ticket = Ticket(seed=3, config=config, tensors=[PlainTensor("p", np.array([1.0], np.float16))])
        path = tmp_path / f"deep{depth}.tpk"
        path.write_bytes(encode_artifact(ticket))
        load_artifact(path)  # the library reads it: so must the loader
        assert list(loader.load(str(path))) == ["p"]


@pytest.mark.skipif(not HAVE_V1_EXTRA, reason="the seeds' version-1 files are written with the v1 extra")
def test_loader_reads_version_1_files_and_names_constriction_sections(loader, tmp_path):
    from tests.fuzz.mutate import seed_corpus

    v1 = [d for d in seed_corpus() if d[8] == 1]
    assert v1, "the fuzz seeds hold version-1 files"
    for i, data in enumerate(v1):
        path = tmp_path / f"v1-{i}.tpk"
        path.write_bytes(data)
        with pytest.raises(loader.TpkError, match=r"v1 encoding '(ans0|ansrow|nm)' \(constriction\) is not supported"):
            loader.load(str(path))
    # a version-1 file in the fixed-width encodings loads, with version 1's single digest
    info = parse_artifact(CONFORMANCE.joinpath("several-tensors.tpk").read_bytes())
    ticket = decode_artifact(info)
    ticket.tensors = [t for t in ticket.tensors if not isinstance(t, Int8Tensor)]
    header, payload = _v1_header(ticket)
    path = tmp_path / "v1-fixed.tpk"
    path.write_bytes(assemble(header, payload, "zstd", version=1))
    got = loader.load(str(path))
    weights = check_digests(ticket, header, 1)[0]
    assert list(got) == list(weights) and all(np.array_equal(got[k], weights[k]) for k in got)


def _v1_header(ticket):
    """A version-1 header and payload for ``ticket`` (fixed-width encodings, v1's digest)."""
    from ticketpack.format.container import append_sections, ticket_header
    from ticketpack.format.digest import weights_sha256_v1
    from ticketpack.format.sections import encode_tensor
    from ticketpack.format.tensors import effective_weights

    payload, entries = bytearray(), []
    for t in ticket.tensors:
        entry, parts = encode_tensor(t, "zstd", None)
        entry["sections"] = append_sections(payload, parts)
        entries.append(entry)
    header = ticket_header(ticket, entries, {})
    header.pop("model_sha256")
    header["weights_sha256"] = weights_sha256_v1(effective_weights(ticket).items())
    return header, bytes(payload)


def test_loader_reproduces_format_md_version_3_known_answers(loader):
    """Section 9's table of version 3's rules and layouts, read from the document."""
    text = (Path(__file__).parents[1] / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| `([^`]+)` \| `(\[[\d, ]+\])` \| `(\w+)` \| `(\w+)` \| ([\d.-]+) \| "
                      r"`([0-9a-f ]+)` \| `([0-9a-f]{64})` \|$", text, re.M)
    assert len(rows) >= 9
    for seed, name, shape, rule, layout, std, first, digest in rows:
        shape = json.loads(shape)
        w = loader.frozen(int(seed), name, shape, rule, layout, None if std == "-" else float(std))
        assert " ".join(f"{v:08x}" for v in w[:4].view(np.uint32)) == first, name
        assert hashlib.sha256(loader.rec(name, shape) + w.astype("<f4").tobytes()).hexdigest() == digest, name


def test_loader_init_table_is_written_from_the_constants(loader, loader_path, compact):
    """The packaged file holds no init rules of its own: export writes the format's table."""
    template = (Path(api.__file__).parent / api.LOADER_FILE).read_text(encoding="utf-8")
    assert re.findall(r"^INITS = .*$", template, re.M) == ["INITS = {}"]
    assert {rule: tuple(row) for rule, row in loader.INITS.items()} == api.loader_init_table()
    assert list(loader.INITS) == list(INIT_RULES)
    assert compact or loader_path.read_text(encoding="utf-8").count("INITS = {") == 1


def _exported(tmp_path: Path):
    path = api.export_loader(tmp_path / "tpk_loader.py")["path"]
    spec = importlib.util.spec_from_file_location("tpk_loader_new_rule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_new_init_rule_reaches_the_loader_without_editing_it(monkeypatch, tmp_path):
    from ticketpack.format.constants import INIT_FAMILIES, InitRule

    monkeypatch.setitem(INIT_RULES, "test_fan_out", InitRule("signed_constant", "fan_out"))
    monkeypatch.setitem(INIT_RULES, "test_uniform_fan_out", InitRule("uniform", "fan_out"))
    loader = _exported(tmp_path)
    for rule in ("test_fan_out", "test_uniform_fan_out"):
        ours = loader.frozen(7, "blocks.1.attn.c_q.weight", [48, 20], rule).reshape(48, 20)
        core = np.asarray(philox.frozen_weight(7, "blocks.1.attn.c_q.weight", (48, 20), rule))
        assert np.array_equal(ours.view(np.uint32), core.view(np.uint32)), rule
    monkeypatch.setitem(INIT_FAMILIES, "laplace", 1.0)  # a family the loader has no kernel for
    monkeypatch.setitem(INIT_RULES, "test_laplace", InitRule("laplace", "fan_in"))
    loader = _exported(tmp_path)
    with pytest.raises(loader.TpkError, match="init family 'laplace'"):
        loader.frozen(7, "w", [4, 4], "test_laplace")


def test_loader_reproduces_format_md_known_answers(loader):
    """Section 9's table of FORMAT.md, read from the document, against the loader's Philox."""
    text = (Path(__file__).parents[1] / "docs" / "FORMAT.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| `([^`]+)` \| `(\[[\d, ]+\])` \| `(\w+)` \| `([0-9a-f ]+)` \| `([0-9a-f]{64})` \|$",
                      text, re.M)
    assert len(rows) >= 5
    for seed, name, shape, rule, first, digest in rows:
        w = loader.frozen(int(seed), name, json.loads(shape), rule).reshape(json.loads(shape))
        assert " ".join(f"{v:08x}" for v in w.reshape(-1)[:4].view(np.uint32)) == first
        b = name.encode()
        record = struct.pack(f"<I{len(b)}sI{w.ndim}Q", len(b), b, w.ndim, *w.shape) + w.tobytes()
        assert hashlib.sha256(record).hexdigest() == digest
    words = re.search(r"Stream words 0\.\.7 of seed 1, name `tok_emb.weight` \(sid `([0-9a-f]+)`\): (.*)\.", text)
    sid = int.from_bytes(hashlib.sha256(b"tok_emb.weight").digest()[:8], "little")
    assert f"{sid:016x}" == words[1]
    assert [f"{v:08x}" for v in loader.philox(1, sid, 8)] == re.findall(r"`([0-9a-f]{8})`", words[2])


def test_loader_speed_bench_runs_at_a_tiny_size():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "bench" / "loader_speed.py"), "--scale", "0.05"],
                         capture_output=True, text=True, timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "standalone loader:" in out.stdout and "| auto |" in out.stdout and "| zstd |" in out.stdout


def test_loader_refuses_a_nesting_bomb_header(loader):
    text = b"[" * 50_000 + b"]" * 50_000
    prefix = b"\x89TPK\r\n\x1a\n" + struct.pack("<HBBIIQ", 2, 0, 0, len(text), len(text), 0) + text
    with pytest.raises(loader.TpkError, match="header: RecursionError"):
        loader.read(prefix + struct.pack("<I", zlib.crc32(prefix)))


def test_loader_error_is_one_line_even_for_a_name_with_a_newline(loader_path, tmp_path):
    ticket = Ticket(seed=1, config={}, tensors=[PlainTensor("a\nb\r", np.array([1.0], np.float16))])

    def unknown_kind(h):
        h["tensors"][0]["kind"] = "float8"

    path = tmp_path / "newline.tpk"
    path.write_bytes(_reseal(encode_artifact(ticket), unknown_kind))
    out = subprocess.run([sys.executable, str(loader_path), str(path)], capture_output=True, text=True)
    assert out.returncode == 3 and out.stderr.count("\n") == 1 and "a\\nb\\r: kind 'float8'" in out.stderr
