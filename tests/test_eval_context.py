"""The artifact's evaluation context: recorded by train/pack, used by load-and-eval and sample."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from ticketpack import api
from ticketpack.artifact import (_assemble, encode_artifact, parse_artifact, read_artifact_bytes,
                                 write_artifact, PREFIX, TRAILER)
from ticketpack.train.checkpoint import load_checkpoint
from ticketpack.cli.main import main
from ticketpack.format.compression import decompress
from ticketpack.errors import CheckpointError, HeaderError, UsageError
from ticketpack.format.eval_context import check_eval_context
from ticketpack.text.tokenizer import SentencePieceTokenizer, train_sentencepiece
from ticketpack.train.loop import TrainOptions, train

from tests.tiny import make_ticket, corpus_slice

SP_CONTEXT = {"seq_len": 64, "tokenizer": {"kind": "sentencepiece", "sha256": "ab" * 32,
                                           "vocab_size": 1024}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-step tiny run at seq_len 48, packed; and the text it was trained on."""
    folder = tmp_path_factory.mktemp("evalctx")
    corpus = folder / "c.txt"
    corpus_slice(corpus, 20_000)
    ckpt = folder / "m.safetensors"
    train(TrainOptions(data=[str(corpus)], out=str(ckpt), preset="tiny", seq_len=48, batch_size=4,
                       steps=3, eval_every=0, final_eval=False))
    artifact = folder / "m.tpk"
    api.pack(ckpt, artifact)
    return folder, ckpt, artifact, corpus


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("bad, words", [
    ([], "expected an object"),
    ({"seq_len": 128}, "missing key 'tokenizer'"),
    ({"seq_len": True, "tokenizer": {"kind": "bytes"}}, "seq_len"),
    ({"seq_len": 0, "tokenizer": {"kind": "bytes"}}, "seq_len"),
    ({"seq_len": 128, "tokenizer": {"kind": "bytes"}, "x": 1}, "unknown key 'x'"),
    ({"seq_len": 128, "tokenizer": {"kind": "bpe"}}, "tokenizer.kind"),
    ({"seq_len": 128, "tokenizer": {"kind": ["bytes"]}}, "tokenizer.kind"),  # unhashable: was a TypeError
    ({"seq_len": 128, "tokenizer": {"kind": {}}}, "tokenizer.kind"),
    ({"seq_len": 128, "tokenizer": {"kind": "bytes", "sha256": "ab" * 32}}, "unknown key 'sha256'"),
    ({"seq_len": 128, "tokenizer": {"kind": "sentencepiece", "sha256": "AB" * 32, "vocab_size": 9}},
     "sha256"),
    ({"seq_len": 128, "tokenizer": {"kind": "sentencepiece", "sha256": "ab" * 32}}, "vocab_size"),
])
def test_malformed_context_is_refused_naming_the_key(bad, words):
    with pytest.raises(HeaderError, match=words.replace("'", ".")):
        check_eval_context(bad)


def test_context_round_trips_and_old_artifacts_have_none(tmp_path):
    ticket = dataclasses.replace(make_ticket(), eval=SP_CONTEXT)
    write_artifact(ticket, tmp_path / "a.tpk")
    info = parse_artifact(read_artifact_bytes(tmp_path / "a.tpk"))
    assert info.header["eval"] == SP_CONTEXT
    write_artifact(make_ticket(), tmp_path / "b.tpk")
    assert "eval" not in parse_artifact(read_artifact_bytes(tmp_path / "b.tpk")).header


def test_writer_refuses_a_bad_context_and_reader_a_bad_header(tmp_path):
    with pytest.raises(UsageError, match="ticket.eval.seq_len"):
        encode_artifact(dataclasses.replace(make_ticket(), eval={"seq_len": -1,
                                                                   "tokenizer": {"kind": "bytes"}}))
    data = encode_artifact(dataclasses.replace(make_ticket(), eval=SP_CONTEXT))
    stored, raw, payload_len = PREFIX.unpack_from(data)[4:]
    header = json.loads(decompress(data[PREFIX.size:PREFIX.size + stored], "zstd", raw))
    header["eval"]["tokenizer"]["vocab_size"] = "1024"
    payload = data[PREFIX.size + stored:len(data) - TRAILER.size]
    with pytest.raises(HeaderError, match="eval.tokenizer.vocab_size"):
        parse_artifact(_assemble(header, payload, "zstd"))


def test_train_records_the_context_and_pack_writes_it(trained):
    _, ckpt, artifact, _ = trained
    assert load_checkpoint(ckpt).eval == {"seq_len": 48, "tokenizer": {"kind": "bytes"}}
    code, stdout, _ = run("inspect", artifact)
    assert code == 0 and json.loads(stdout)["eval"] == {"seq_len": 48, "tokenizer": {"kind": "bytes"}}


def test_load_and_eval_defaults_to_the_recorded_length_and_a_flag_wins(trained):
    _, _, artifact, corpus = trained
    common = (artifact, "--data", corpus, "--device", "cpu", "--max-bytes", "3000", "--json")
    code, stdout, stderr = run("load-and-eval", *common)
    out = json.loads(stdout)
    assert code == 0 and out["seq_len"] == 48 and out["seq_len_source"] == "artifact"
    assert "evaluation context" not in stderr
    code, stdout, _ = run("load-and-eval", *common, "--seq-len", "16")
    out16 = json.loads(stdout)
    assert code == 0 and out16["seq_len"] == 16 and out16["seq_len_source"] == "option"
    assert out16["val_bpb"] != out["val_bpb"]
    code, stdout, _ = run("load-and-eval", *common[:-1])
    assert code == 0 and "seq_len 48 (artifact)" in stdout


def test_artifact_without_context_keeps_256_and_says_so(tmp_path, trained):
    folder, ckpt, _, corpus = trained
    ckpt_data = load_checkpoint(ckpt)
    from ticketpack.train.checkpoint import ticket_from_checkpoint

    ticket = dataclasses.replace(ticket_from_checkpoint(ckpt_data), eval=None)
    write_artifact(ticket, tmp_path / "old.tpk")
    code, stdout, stderr = run("load-and-eval", tmp_path / "old.tpk", "--data", corpus, "--device",
                               "cpu", "--max-bytes", "3000", "--json")
    assert code == 0 and json.loads(stdout)["seq_len"] == 256
    assert json.loads(stdout)["seq_len_source"] == "default"
    assert stderr.count("\n") == 1 and "no evaluation context" in stderr and "256" in stderr
    code, stdout, stderr = run("sample", tmp_path / "old.tpk", "--prompt", "To", "--tokens", "3",
                               "--device", "cpu")
    assert code == 0 and "no evaluation context" in stderr and "--context 256" in stderr


def test_sample_uses_the_recorded_context(trained):
    _, _, artifact, _ = trained
    code, stdout, stderr = run("sample", artifact, "--prompt", "To", "--tokens", "3", "--device", "cpu")
    assert code == 0 and stdout.startswith("To") and "context 48 tokens (artifact)" in stderr
    out = api.sample(artifact, "To", tokens=3, device="cpu", context=8)
    assert (out["context"], out["context_source"]) == (8, "option")


def test_a_tokenizer_other_than_the_recorded_one_is_refused(tmp_path, trained):
    _, _, artifact, corpus = trained
    corpus_slice(tmp_path / "slice.txt", 100_000)
    sp_path = train_sentencepiece(tmp_path / "slice.txt", tmp_path / "sp", 512)
    sp_sha = SentencePieceTokenizer(sp_path).sha256
    code, _, stderr = run("load-and-eval", artifact, "--data", corpus, "--tokenizer", sp_path,
                          "--device", "cpu")
    assert code == 2 and sp_sha[:16] in stderr and "records bytes" in stderr
    recorded_sp = tmp_path / "sp.tpk"
    write_artifact(dataclasses.replace(api.load_verified(artifact)[0], eval=SP_CONTEXT), recorded_sp)
    code, _, stderr = run("load-and-eval", recorded_sp, "--data", corpus, "--tokenizer", sp_path,
                          "--device", "cpu")
    assert code == 2 and sp_sha[:16] in stderr and "ab" * 8 in stderr
    code, _, stderr = run("sample", recorded_sp, "--prompt", "To", "--device", "cpu")
    assert code == 2 and "pass that .model file with --tokenizer" in stderr


def test_a_malformed_context_in_a_checkpoint_is_a_checkpoint_error(tmp_path, trained):
    from safetensors import safe_open
    from safetensors.torch import save_file

    _, ckpt, _, _ = trained
    with safe_open(str(ckpt), framework="pt") as fh:
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={**meta, "eval": '{"seq_len": 5}'})
    with pytest.raises(CheckpointError, match="missing key 'tokenizer'"):
        load_checkpoint(tmp_path / "bad.safetensors")
