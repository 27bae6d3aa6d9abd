// The raw bytes a token stands for. Byte-level BPE vocabularies (GPT-2, Qwen, Llama 3) spell
// every byte as one printable character (GPT-2's byte-to-unicode table): a token that holds
// part of a multi-byte UTF-8 character has its partial bytes recovered here, which a decode to
// text cannot give (it reads U+FFFD). Other vocabularies: the UTF-8 of the token's decode.

// GPT-2's table, inverted: printable Latin-1 bytes stand for themselves, the other bytes for
// the characters from U+0100 on, in byte order.
function byteLevelTable(): Map<string, number> {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table = new Map<string, number>();
  let next = 0x100;
  for (let b = 0; b < 256; b++) table.set(String.fromCodePoint(printable(b) ? b : next++), b);
  return table;
}

let table: Map<string, number> | null = null;

// The bytes of a byte-level token piece, or null when a character is not in the table (the
// piece is not byte-level: an added token, say).
export function byteLevelBytes(piece: string): number[] | null {
  table ??= byteLevelTable();
  const out: number[] = [];
  for (const ch of piece) {
    const b = table.get(ch);
    if (b === undefined) return null;
    out.push(b);
  }
  return out;
}

// Does tokenizer.json decode through ByteLevel (alone or in a Sequence)?
export function isByteLevel(json: Record<string, unknown>): boolean {
  const d = json['decoder'] as { type?: string; decoders?: { type?: string }[] } | null | undefined;
  if (!d) return false;
  return d.type === 'ByteLevel' || (d.type === 'Sequence' && (d.decoders ?? []).some((x) => x.type === 'ByteLevel'));
}
