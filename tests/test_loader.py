"""The standalone loader (`ticketpack export-loader`): one file, numpy + zstandard, reads v2.

It is written from docs/FORMAT.md alone; these tests hold it to the library: same rANS
decodes, same Philox bits, and (on every conformance file, in a child process where importing
torch or numba raises) the same weights and digests.
"""

from __future__ import annotations

import ast
import importlib.util
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from ticketpack import api
from ticketpack.cli.main import main
from ticketpack.format import philox, rans

STDLIB_AND_NUMPY = {"hashlib", "json", "math", "re", "struct", "sys", "zlib", "concurrent", "numpy",
                    "zstandard"}


@pytest.fixture(scope="module")
def loader_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("loader") / "tpk_loader.py"
    result = CliRunner().invoke(main, ["export-loader", "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def loader(loader_path):
    spec = importlib.util.spec_from_file_location("tpk_loader_under_test", loader_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_loader_writes_the_packaged_file(loader_path, tmp_path):
    assert loader_path.read_bytes() == api.loader_source()
    info = api.export_loader(tmp_path / "again.py")
    assert info["bytes"] == len(api.loader_source()) == (tmp_path / "again.py").stat().st_size
    result = CliRunner().invoke(main, ["export-loader", "-o", str(tmp_path / "no" / "x.py")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "no").exists()


def test_size_counts_the_loader_as_code(loader_path, tmp_path):
    from ticketpack.sizing import code_size

    assert code_size([str(loader_path)]) == len(api.loader_source())


def test_loader_imports_only_the_standard_library_numpy_and_zstandard(loader_path):
    tree = ast.parse(loader_path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported <= STDLIB_AND_NUMPY


@pytest.mark.parametrize("K", [2, 3, 7, 256])
@pytest.mark.parametrize("n", [1, 9, 5003])
def test_rans0_decodes_what_the_core_encodes(loader, K, n):
    gen = np.random.default_rng(K * n)
    for levels in (gen.integers(0, K, n), np.minimum(gen.geometric(0.7, n) - 1, K - 1),
                   np.full(n, K - 1)):
        levels = levels.astype(np.uint8)
        assert np.array_equal(loader.rans0(rans.encode_rans0(levels, K), n, K), levels)


@pytest.mark.parametrize("shape", [(3, 8), (40, 300), (1, 1), (7, 2, 3)])
def test_ransrow_decodes_what_the_core_encodes(loader, shape):
    gen = np.random.default_rng(len(shape))
    bits = (gen.random(shape) < gen.random((shape[0],) + (1,) * (len(shape) - 1))).astype(np.uint8)
    bits[0] = 0
    bits[-1] = 1 if shape[0] > 2 else bits[-1]
    data = rans.encode_ransrow(bits.reshape(shape[0], -1))
    assert np.array_equal(loader.ransrow(data, list(shape)).reshape(shape), bits)


@pytest.mark.parametrize("N,M", [(2, 4), (4, 8), (1, 16), (0, 4), (4, 4), (3, 7)])
def test_ransnm_decodes_what_the_core_encodes(loader, N, M):
    gen = np.random.default_rng(M)
    groups = np.zeros((60, M), np.uint8)
    for g in groups:
        g[gen.choice(M, N, replace=False)] = 1
    levels = groups.reshape(10, 6 * M)
    data = rans.encode_ransnm(levels, N, M)
    assert np.array_equal(loader.ransnm(data, levels.size, N, M).reshape(levels.shape), levels)


def test_loader_refuses_a_broken_rans_stream(loader):
    levels = np.random.default_rng(0).integers(0, 2, 4000).astype(np.uint8)
    data = rans.encode_rans0(levels, 2)
    for bad in (data[:-2], data + b"\0\0", data[:-1] + bytes([data[-1] ^ 1])):
        with pytest.raises(loader.TpkError):
            loader.rans0(bad, len(levels), 2)


@pytest.mark.parametrize("rule", ["xavier_uniform", "he_uniform", "signed_constant_xavier",
                                  "signed_constant_he"])
@pytest.mark.parametrize("shape", [(64, 33), (5, 3, 2), (17,), (1, 1)])
def test_philox_weights_match_the_core_bit_for_bit(loader, rule, shape):
    ours = loader.frozen(123456789, "blocks.0.mlp.fc.weight", list(shape), rule)
    core = np.asarray(philox.frozen_weight(123456789, "blocks.0.mlp.fc.weight", shape, rule))
    assert ours.dtype == np.float32 and ours.shape == shape
    assert np.array_equal(ours.view(np.uint32), core.view(np.uint32))
