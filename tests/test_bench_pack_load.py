"""bench/pack_load.py runs end to end at a tiny size (the figures themselves are the script's)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pack_load_bench_runs_at_a_tiny_size():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "pack_load.py"), "--scale", "0.05",
                          "--codecs", "auto", "--repeats", "1", "--threads", "1"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    for stage in ("decompress+decode", "regenerate", "effective", "digest", "load_artifact (fused)"):
        assert f"| {stage} |" in out.stdout, stage
    assert "load speed-up including ticketpack's digest check" in out.stdout
