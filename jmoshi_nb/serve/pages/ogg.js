// Ogg framing of Opus packets (RFC 3533 pages, RFC 7845 Ogg Opus), as moshi's protocol carries audio:
// every 0x01 message is one or more whole Ogg pages. The browser's WebCodecs AudioEncoder/AudioDecoder
// give and take bare Opus packets; this file puts them into pages and takes them out again.
// A plain script (the talk page loads it with <script>); under node it is a CommonJS module (tests).

/** CRC-32 of Ogg pages: polynomial 0x04c11db7, initial value 0, not reflected, no final xor. */
const OGG_CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let k = 0; k < 8; k++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    table[i] = r >>> 0;
  }
  return table;
})();

function oggCrc(bytes) {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) ^ OGG_CRC_TABLE[((crc >>> 24) ^ bytes[i]) & 0xff]) >>> 0;
  return crc >>> 0;
}

const OGG_BOS = 0x02;
const OGG_EOS = 0x04;
const OGG_CONTINUED = 0x01;

/** One Ogg page holding whole `packets` (each Uint8Array); `granule` a Number (exact below 2**53). */
function oggPage(packets, { headerType = 0, granule = 0, serial = 0, sequence = 0 } = {}) {
  const lacing = [];
  for (const p of packets) {
    for (let n = p.length; ; n -= 255) {
      lacing.push(Math.min(n, 255));
      if (n < 255) break;
    }
  }
  if (lacing.length > 255) throw new Error(`${lacing.length} lacing values do not fit one Ogg page (255)`);
  const body = packets.reduce((a, p) => a + p.length, 0);
  const page = new Uint8Array(27 + lacing.length + body);
  const view = new DataView(page.buffer);
  page.set([0x4f, 0x67, 0x67, 0x53], 0); // "OggS"
  page[4] = 0;
  page[5] = headerType;
  view.setUint32(6, granule % 2 ** 32, true);
  view.setUint32(10, Math.floor(granule / 2 ** 32), true);
  view.setUint32(14, serial >>> 0, true);
  view.setUint32(18, sequence >>> 0, true);
  page[26] = lacing.length;
  page.set(lacing, 27);
  let pos = 27 + lacing.length;
  for (const p of packets) {
    page.set(p, pos);
    pos += p.length;
  }
  view.setUint32(22, oggCrc(page), true);
  return page;
}

/** The 19-byte OpusHead packet (RFC 7845 5.1), mono unless told; pre-skip in 48 kHz samples. */
function opusHead(inputRate, channels = 1, preSkip = 312) {
  const head = new Uint8Array(19);
  const view = new DataView(head.buffer);
  head.set(new TextEncoder().encode("OpusHead"), 0);
  head[8] = 1;
  head[9] = channels;
  view.setUint16(10, preSkip, true);
  view.setUint32(12, inputRate, true);
  view.setInt16(16, 0, true);
  head[18] = 0;
  return head;
}

/** The OpusTags packet (RFC 7845 5.2) with `vendor` and no comments. */
function opusTags(vendor = "jmoshi-nb talk page") {
  const v = new TextEncoder().encode(vendor);
  const tags = new Uint8Array(8 + 4 + v.length + 4);
  const view = new DataView(tags.buffer);
  tags.set(new TextEncoder().encode("OpusTags"), 0);
  view.setUint32(8, v.length, true);
  tags.set(v, 12);
  view.setUint32(12 + v.length, 0, true);
  return tags;
}

/** Samples at 48 kHz in an Opus packet, from its TOC byte (RFC 6716 3.1). */
function opusPacketSamples48(packet) {
  if (!packet.length) return 0;
  const toc = packet[0];
  const config = toc >> 3;
  let frame; // in 48 kHz samples
  if (config < 12) frame = [480, 960, 1920, 2880][config & 3];
  else if (config < 16) frame = [480, 960][config & 1];
  else frame = [120, 240, 480, 960][config & 3];
  const code = toc & 3;
  const count = code === 0 ? 1 : code < 3 ? 2 : packet.length > 1 ? packet[1] & 0x3f : 0;
  return frame * count;
}

/** Opus packets -> Ogg pages: the two header pages first, then one page per packet (lowest latency). */
class OggOpusWriter {
  constructor(inputRate, { serial = Math.floor(Math.random() * 2 ** 32), preSkip = 312 } = {}) {
    this.inputRate = inputRate;
    this.serial = serial;
    this.preSkip = preSkip;
    this.sequence = 0;
    this.granule = preSkip;
  }

  /** The OpusHead and OpusTags pages, to send before the first packet. */
  headerPages() {
    const head = oggPage([opusHead(this.inputRate, 1, this.preSkip)], {
      headerType: OGG_BOS, granule: 0, serial: this.serial, sequence: this.sequence++,
    });
    const tags = oggPage([opusTags()], { granule: 0, serial: this.serial, sequence: this.sequence++ });
    return [head, tags];
  }

  /** The page carrying one Opus packet. */
  packetPage(packet) {
    this.granule += opusPacketSamples48(packet);
    return oggPage([packet], { granule: this.granule, serial: this.serial, sequence: this.sequence++ });
  }
}

/** Ogg pages (in any chunks) -> the Opus packets in them; `head` is the OpusHead packet once seen. */
class OggOpusReader {
  constructor() {
    this.buffer = new Uint8Array(0);
    this.partial = []; // pieces of a packet continued on the next page
    this.head = null;
    this.headerPackets = 0;
    this.crcErrors = 0;
  }

  /** Append bytes; returns the whole audio packets (Uint8Array) they complete, in order. */
  push(bytes) {
    const joined = new Uint8Array(this.buffer.length + bytes.length);
    joined.set(this.buffer, 0);
    joined.set(bytes, this.buffer.length);
    const packets = [];
    let pos = 0;
    while (joined.length - pos >= 27) {
      if (joined[pos] !== 0x4f || joined[pos + 1] !== 0x67 || joined[pos + 2] !== 0x67 || joined[pos + 3] !== 0x53) {
        throw new Error("not an Ogg stream: a page does not start with 'OggS'");
      }
      const nseg = joined[pos + 26];
      if (joined.length - pos < 27 + nseg) break;
      const lacing = joined.subarray(pos + 27, pos + 27 + nseg);
      const bodyLen = lacing.reduce((a, v) => a + v, 0);
      const end = pos + 27 + nseg + bodyLen;
      if (end > joined.length) break;
      const page = joined.slice(pos, end);
      const stored = new DataView(page.buffer).getUint32(22, true);
      page.fill(0, 22, 26);
      if (oggCrc(page) !== stored) this.crcErrors++;
      let at = pos + 27 + nseg;
      for (const v of lacing) {
        this.partial.push(joined.subarray(at, at + v));
        at += v;
        if (v < 255) this.finishPacket(packets);
      }
      pos = end;
    }
    this.buffer = joined.slice(pos);
    return packets;
  }

  finishPacket(out) {
    const len = this.partial.reduce((a, p) => a + p.length, 0);
    const packet = new Uint8Array(len);
    let at = 0;
    for (const p of this.partial) {
      packet.set(p, at);
      at += p.length;
    }
    this.partial = [];
    if (this.headerPackets < 2) {
      if (this.headerPackets === 0) this.head = packet;
      this.headerPackets++;
      return;
    }
    out.push(packet);
  }
}

if (typeof module !== "undefined") {
  module.exports = { oggCrc, oggPage, opusHead, opusTags, opusPacketSamples48, OggOpusWriter, OggOpusReader };
}
