"""The talk page's logic under node: Ogg framing of Opus packets, checked against sphn's real Opus streams."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sphn

from jmoshi_nb.core.audio import FRAME_SIZE, SAMPLE_RATE
from jmoshi_nb.serve.pages import PAGES

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: page JS not exercised")

# Read sphn's stream in awkward chunks, re-frame its Opus packets with the page's writer, re-make each
# original page from its fields (same bytes = same CRC), and count the 48 kHz samples from the TOC bytes.
NODE_SCRIPT = r"""
const fs = require("fs");
const ogg = require(process.argv[2]);
const stream = new Uint8Array(fs.readFileSync(process.argv[3]));
const reader = new ogg.OggOpusReader();
const packets = [];
for (let at = 0; at < stream.length; at += 37) packets.push(...reader.push(stream.subarray(at, at + 37)));
const writer = new ogg.OggOpusWriter(24000, { serial: 1234 });
const pages = [...writer.headerPages(), ...packets.map((p) => writer.packetPage(p))];
fs.writeFileSync(process.argv[4], Buffer.concat(pages.map((p) => Buffer.from(p))));
// Re-make sphn's own pages byte for byte.
let remade = 0, total = 0, pos = 0;
const whole = new ogg.OggOpusReader();
while (pos < stream.length) {
  const nseg = stream[pos + 26];
  const lacing = stream.subarray(pos + 27, pos + 27 + nseg);
  const end = pos + 27 + nseg + lacing.reduce((a, v) => a + v, 0);
  const page = stream.subarray(pos, end);
  const view = new DataView(page.buffer, page.byteOffset);
  const pks = [];
  let at = 27 + nseg, cur = [];
  for (const v of lacing) {
    cur.push(page.subarray(at, at + v));
    at += v;
    if (v < 255) { pks.push(Buffer.concat(cur)); cur = []; }
  }
  const granule = view.getUint32(6, true) + view.getUint32(10, true) * 2 ** 32;
  const again = ogg.oggPage(pks.map((b) => new Uint8Array(b)), {
    headerType: page[5], granule, serial: view.getUint32(14, true), sequence: view.getUint32(18, true),
  });
  total++;
  if (Buffer.compare(Buffer.from(again), Buffer.from(page)) === 0) remade++;
  pos = end;
}
console.log(JSON.stringify({
  packets: packets.length, crcErrors: reader.crcErrors, head: Buffer.from(reader.head.subarray(0, 8)).toString(),
  headRate: new DataView(reader.head.buffer, reader.head.byteOffset).getUint32(12, true),
  samples48: packets.reduce((a, p) => a + ogg.opusPacketSamples48(p), 0), pages: total, remade,
  lacing300: ogg.oggPage([new Uint8Array(300), new Uint8Array(255)])[26],
}));
"""


def run_node(tmp_path: Path, stream: bytes) -> tuple[dict, bytes]:
    src, out = tmp_path / "in.ogg", tmp_path / "out.ogg"
    src.write_bytes(stream)
    script = tmp_path / "t.cjs"
    script.write_text(NODE_SCRIPT, encoding="utf-8")
    shutil.copy(PAGES / "ogg.js", tmp_path / "ogg.cjs")
    r = subprocess.run(
        ["node", str(script), str(tmp_path / "ogg.cjs"), str(src), str(out)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), out.read_bytes()


def test_ogg_pages_round_trip_real_opus(tmp_path: Path) -> None:
    t = np.arange(FRAME_SIZE * 25) / SAMPLE_RATE
    pcm = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    writer = sphn.OpusStreamWriter(SAMPLE_RATE)
    stream = b"".join(writer.append_pcm(f) for f in pcm.reshape(25, FRAME_SIZE))
    out, reframed = run_node(tmp_path, stream)

    assert out["crcErrors"] == 0 and out["head"] == "OpusHead"
    assert out["pages"] > 2 and out["remade"] == out["pages"]  # the page writer's CRC and layout are Ogg's
    assert out["packets"] > 0 and out["samples48"] == len(pcm) * 2  # the TOC bytes add up to 2 s at 48 kHz
    assert out["lacing300"] == 4  # 300 = 255 + 45; 255 = 255 + 0

    # The page's stream decodes, in sphn (what the server runs), to exactly what sphn's own stream gives.
    expected = sphn.OpusStreamReader(SAMPLE_RATE).append_bytes(stream)
    got = sphn.OpusStreamReader(SAMPLE_RATE).append_bytes(reframed)
    assert len(expected) > 20 * FRAME_SIZE
    np.testing.assert_array_equal(got, expected)
