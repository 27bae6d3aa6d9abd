// The native KV-event reader (via the debug-only parseKvEventBatch) on batches encoded by
// real msgpack libraries, as SGLang's msgspec would send them (reference/sglang.md §2.4):
// array events (SGLang <= 0.5.19) and tagged-map events (0.5.20 on, msgspec `tag=True`,
// `omit_defaults`; the batch stays an array). KVGATE_TEST_SEED=<n> replays a run.
import { encode } from '@msgpack/msgpack';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { native, rng, SEED, type KvEventBatchObject, type KvEventObject } from './helpers.js';



const packr = new Packr({ useRecords: false, int64AsType: 'bigint' });


// A random wire value for an int64 hash (what the encoder gets) and the int64 it means.
// Small ones go as JS numbers (minimal msgpack ints); others as bigint (int64 / uint64,
// where a uint64 above 2^63 means the same 64 bits as a signed value).
function randomHash(next: () => number): [wire: number | bigint, value: bigint] {
  const kind = Math.floor(next() * 4);
  if (kind === 0) {
    const n = Math.floor(next() * 2 ** 31) * (next() < 0.5 ? -1 : 1);
    return [n, BigInt(n)];
  }
  const bits = (BigInt((next() * 2 ** 32) >>> 0) << 32n) | BigInt((next() * 2 ** 32) >>> 0);
  if (kind === 1) return [bits, BigInt.asIntN(64, bits)]; // positive bigint, may exceed INT64_MAX
  const signed = BigInt.asIntN(64, bits);
  return [signed, signed];
}

interface Generated { wire: unknown[]; expected: KvEventBatchObject }

function randomBatch(next: () => number): Generated {
  const wireEvents: unknown[] = [];
  const events: KvEventObject[] = [];
  const count = Math.floor(next() * 6);
  for (let e = 0; e < count; e++) {
    const kind = Math.floor(next() * 3);
    const hashes: Array<number | bigint> = [];
    const values: bigint[] = [];
    for (let h = Math.floor(next() * 3) + (kind === 0 ? 1 : 0); h > 0; h--) {
      const [wire, value] = randomHash(next);
      hashes.push(wire);
      values.push(value);
    }
    // medium: absent, nil, "GPU" or another tier.
    const mediumChoice = Math.floor(next() * 4);
    const medium = [undefined, null, 'GPU', next() < 0.5 ? 'CPU_PINNED' : 'DISK'][mediumChoice];
    const gpuMedium = mediumChoice < 3;
    if (kind === 0) {
      const [parentWire, parentValue] = next() < 0.3 ? [null, null] : randomHash(next);
      const tokens = Array.from({ length: Math.floor(next() * 40) }, () =>
        next() < 0.9 ? Math.floor(next() * 152000) : (next() * 2 ** 32) >>> 0);
      const blockSize = 1 + Math.floor(next() * 1024);
      const lora = next() < 0.7 ? null : Math.floor(next() * 1000);
      const ev: unknown[] = ['BlockStored', hashes, parentWire, tokens, blockSize];
      // Trailing optionals: lora_id and medium may be absent (older builds); an 8th
      // {cache_salt} map may follow (newest).
      const trailing = mediumChoice === 0 ? (next() < 0.5 ? 0 : 1) : next() < 0.3 ? 3 : 2;
      if (trailing >= 1) ev.push(lora);
      if (trailing >= 2) ev.push(medium);
      if (trailing >= 3) ev.push({ cache_salt: 'salt-' + Math.floor(next() * 100) });
      wireEvents.push(ev);
      events.push({
        kind: 'BlockStored',
        blockHashes: BigInt64Array.from(values),
        parentHash: parentValue,
        tokenIds: Uint32Array.from(tokens),
        blockSize,
        loraId: trailing >= 1 && lora !== null ? BigInt(lora) : null,
        gpuMedium: trailing >= 2 ? gpuMedium : true,
      });
    } else if (kind === 1) {
      wireEvents.push(mediumChoice === 0 ? ['BlockRemoved', hashes] : ['BlockRemoved', hashes, medium]);
      events.push({ kind: 'BlockRemoved', blockHashes: BigInt64Array.from(values), gpuMedium });
    } else {
      wireEvents.push(['AllBlocksCleared']);
      events.push({ kind: 'AllBlocksCleared' });
    }
  }
  const ts = next() < 0.8 ? 1.7e9 + next() * 1e6 : Math.floor(next() * 2 ** 31);
  const rankChoice = Math.floor(next() * 3);
  const dpRank = Math.floor(next() * 8);
  const wire = rankChoice === 0 ? [ts, wireEvents] : [ts, wireEvents, rankChoice === 1 ? null : dpRank];
  return { wire, expected: { ts, dpRank: rankChoice === 2 ? dpRank : null, events } };
}

// Map keys of each event's positional fields, after the tag (SGLang's struct field names).
const FIELDS: Record<string, string[]> = {
  BlockStored: ['block_hashes', 'parent_block_hash', 'token_ids', 'block_size', 'lora_id', 'medium'],
  BlockRemoved: ['block_hashes', 'medium'],
  AllBlocksCleared: [],
};
const OPTIONAL = new Set(['parent_block_hash', 'lora_id', 'medium']);

function shuffle<T>(a: T[], next: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** The tagged-map form of an array event, meaning the same: the tag under "type", nil
 *  optionals left out at random (msgspec omits the ones with a None default), the 8th
 *  {cache_salt} element as a key, unknown keys mixed in, and the keys in msgspec's order
 *  (tag first, declaration order) or shuffled. */
function toMapEvent(ev: unknown[], next: () => number): Record<string, unknown> {
  const tag = ev[0] as string;
  const entries: Array<[string, unknown]> = [['type', tag]];
  FIELDS[tag]!.forEach((key, i) => {
    if (i + 1 >= ev.length) return;
    const value = ev[i + 1];
    if (value === null && OPTIONAL.has(key) && next() < 0.5) return;
    entries.push([key, value]);
  });
  const extra = ev[FIELDS[tag]!.length + 1] as { cache_salt?: string } | undefined;
  if (extra?.cache_salt !== undefined) entries.push(['cache_salt', extra.cache_salt]);
  if (next() < 0.2) entries.push(['session_id', 'sess-' + Math.floor(next() * 100)]);
  if (next() < 0.2) entries.push(['lora_name', null]);
  if (next() < 0.1) entries.push(['future_field', [1, { nested: [true, 2.5] }, 'x']]);
  return Object.fromEntries(next() < 0.5 ? entries : shuffle(entries, next));
}

function toMapForm(wire: unknown[], next: () => number, mixed = false): unknown[] {
  const events = (wire[1] as unknown[][]).map((ev) => (mixed && next() < 0.5 ? ev : toMapEvent(ev, next)));
  return [wire[0], events, ...wire.slice(2)];
}

const encoders: Array<[string, (v: unknown) => Uint8Array]> = [
  ['msgpackr', (v) => packr.pack(v)],
  ['@msgpack/msgpack', (v) => encode(v, { useBigInt64: true })],
];

function expectMalformed(bytes: Uint8Array, reason: string, msg?: string): void {
  expect(() => native.parseKvEventBatch(bytes), msg).toThrow(
    expect.objectContaining({ code: 'ERR_KV_EVENT_MALFORMED', message: expect.stringContaining(reason) }),
  );
}

describe(`parseKvEventBatch on encoded batches (KVGATE_TEST_SEED=${SEED})`, () => {
  it('decodes the reference sample', () => {
    const bytes = packr.pack([1.5, [['BlockStored', [-123, 456], null, [1, 2, 3, 4], 2, null, 'GPU'],
      ['BlockRemoved', [7], 'GPU'], ['AllBlocksCleared']], 0]);
    expect(native.parseKvEventBatch(bytes)).toEqual({
      ts: 1.5,
      dpRank: 0,
      events: [
        { kind: 'BlockStored', blockHashes: BigInt64Array.from([-123n, 456n]), parentHash: null,
          tokenIds: Uint32Array.from([1, 2, 3, 4]), blockSize: 2, loraId: null, gpuMedium: true },
        { kind: 'BlockRemoved', blockHashes: BigInt64Array.from([7n]), gpuMedium: true },
        { kind: 'AllBlocksCleared' },
      ],
    });
  });

  for (const [name, enc] of encoders) {
    it(`decodes random batches encoded by ${name} exactly`, () => {
      const next = rng(SEED ^ name.length);
      for (let r = 0; r < 500; r++) {
        const { wire, expected } = randomBatch(next);
        expect(native.parseKvEventBatch(enc(wire)), `batch ${r} (KVGATE_TEST_SEED=${SEED})`).toEqual(expected);
      }
    });

    it(`rejects every truncation of a ${name} batch`, () => {
      const next = rng(SEED + 7);
      let { wire } = randomBatch(next);
      while ((wire[1] as unknown[]).length === 0) wire = randomBatch(next).wire;
      const bytes = enc(wire);
      for (let cut = 0; cut < bytes.length; cut++) {
        expectMalformed(bytes.subarray(0, cut), 'TRUNCATED', `cut ${cut} (KVGATE_TEST_SEED=${SEED})`);
      }
    });
  }

  for (const [name, enc] of encoders) {
    it(`decodes random tagged-map batches encoded by ${name} as their array form`, () => {
      const next = rng(SEED ^ (name.length * 31));
      for (let r = 0; r < 500; r++) {
        const { wire, expected } = randomBatch(next);
        const fromArray = native.parseKvEventBatch(enc(wire));
        const mapWire = toMapForm(wire, next, r % 4 === 3);
        const fromMap = native.parseKvEventBatch(enc(mapWire));
        expect(fromMap, `batch ${r} (KVGATE_TEST_SEED=${SEED})`).toEqual(expected);
        expect(fromMap).toEqual(fromArray);
      }
    });

    it(`rejects every truncation of a ${name} tagged-map batch`, () => {
      const next = rng(SEED + 11);
      let { wire } = randomBatch(next);
      while ((wire[1] as unknown[]).length === 0) wire = randomBatch(next).wire;
      const bytes = enc(toMapForm(wire, next));
      expect(() => native.parseKvEventBatch(bytes)).not.toThrow();
      for (let cut = 0; cut < bytes.length; cut++) {
        expectMalformed(bytes.subarray(0, cut), 'TRUNCATED', `cut ${cut} (KVGATE_TEST_SEED=${SEED})`);
      }
    });
  }

  it('decodes the bytes SGLang 0.5.23 publishes', () => {
    // msgspec 0.22 encoding SGLang 0.5.23's KVEventBatch(ts=1.5, attn_dp_rank=0) of a store
    // (medium GPU), a store with medium None (so omitted), a remove, and a clear.
    const hex =
      '93cb3ff80000000000009487a474797065ab426c6f636b53746f726564ac626c6f636b5f68617368657392d085cd01c8b170' +
      '6172656e745f626c6f636b5f68617368c0a9746f6b656e5f6964739401020304aa626c6f636b5f73697a6502a76c6f72615f' +
      '6964c0a66d656469756da347505586a474797065ab426c6f636b53746f726564ac626c6f636b5f6861736865739109b17061' +
      '72656e745f626c6f636b5f68617368cd01c8a9746f6b656e5f696473920506aa626c6f636b5f73697a6502a76c6f72615f69' +
      '64c083a474797065ac426c6f636b52656d6f766564ac626c6f636b5f6861736865739107a66d656469756da347505581a474' +
      '797065b0416c6c426c6f636b73436c656172656400';
    expect(native.parseKvEventBatch(Buffer.from(hex, 'hex'))).toEqual({
      ts: 1.5,
      dpRank: 0,
      events: [
        { kind: 'BlockStored', blockHashes: BigInt64Array.from([-123n, 456n]), parentHash: null,
          tokenIds: Uint32Array.from([1, 2, 3, 4]), blockSize: 2, loraId: null, gpuMedium: true },
        { kind: 'BlockStored', blockHashes: BigInt64Array.from([9n]), parentHash: 456n,
          tokenIds: Uint32Array.from([5, 6]), blockSize: 2, loraId: null, gpuMedium: true },
        { kind: 'BlockRemoved', blockHashes: BigInt64Array.from([7n]), gpuMedium: true },
        { kind: 'AllBlocksCleared' },
      ],
    });
  });

  it('rejects malformed tagged-map events with the same codes', () => {
    const stored = { type: 'BlockStored', block_hashes: [1], parent_block_hash: null, token_ids: [1, 2], block_size: 2 };
    const one = (ev: unknown) => packr.pack([1.5, [ev], 0]);
    expect(native.parseKvEventBatch(one(stored)).events).toHaveLength(1);
    expectMalformed(one({ ...stored, type: 7 }), 'BAD_TYPE');
    expectMalformed(one({ ...stored, block_hashes: 'x' }), 'BAD_TYPE');
    expectMalformed(one({ ...stored, token_ids: [1.5] }), 'BAD_TYPE');
    expectMalformed(one({ ...stored, medium: 3 }), 'BAD_TYPE');
    expectMalformed(one(new Map<unknown, unknown>([['type', 'AllBlocksCleared'], [1, 2]])), 'BAD_TYPE');
    expectMalformed(one({ block_hashes: [1] }), 'BAD_SHAPE');
    expectMalformed(one({}), 'BAD_SHAPE');
    const { token_ids: _t, ...noTokens } = stored;
    expectMalformed(one(noTokens), 'BAD_SHAPE');
    expectMalformed(one({ type: 'BlockRemoved' }), 'BAD_SHAPE');
    expectMalformed(one({ ...stored, type: 'BlockEvicted' }), 'UNKNOWN_EVENT');
    expectMalformed(one({ ...stored, block_size: 0 }), 'LIMIT_EXCEEDED');
    expectMalformed(one({ ...stored, token_ids: [2n ** 32n] }), 'LIMIT_EXCEEDED');
    // A field given twice (no JS object or Map holds that: the bytes are put together).
    const twice = Buffer.concat([
      Uint8Array.from([0x93]), packr.pack(1.5), Uint8Array.from([0x91, 0x83]),
      ...['type', 'BlockRemoved', 'block_hashes', [1], 'block_hashes', [2]].map((v) => packr.pack(v)),
      packr.pack(0),
    ]);
    expectMalformed(twice, 'BAD_SHAPE');
  });

  it('rejects wrong types, shapes, unknown events, limits and trailing bytes', () => {
    expectMalformed(packr.pack({ ts: 1, events: [] }), 'BAD_TYPE');
    expectMalformed(packr.pack(['1.5', []]), 'BAD_TYPE');
    expectMalformed(packr.pack([1.5, [['BlockRemoved', 'nope']]]), 'BAD_TYPE');
    expectMalformed(packr.pack([1.5, [['BlockRemoved', [1.5]]]]), 'BAD_TYPE');
    expectMalformed(packr.pack([1.5]), 'BAD_SHAPE');
    expectMalformed(packr.pack([1.5, [], 0, 0]), 'BAD_SHAPE');
    expectMalformed(packr.pack([1.5, [['BlockStored', [1], null, [1]]]]), 'BAD_SHAPE');
    expectMalformed(packr.pack([1.5, [['BlockEvicted', [1]]]]), 'UNKNOWN_EVENT');
    expectMalformed(packr.pack([1.5, [['BlockStored', [1], null, [1], 0]]]), 'LIMIT_EXCEEDED');
    expectMalformed(packr.pack([1.5, [['BlockStored', [1], null, [-1], 1]]]), 'LIMIT_EXCEEDED');
    expectMalformed(packr.pack([1.5, [], -1]), 'LIMIT_EXCEEDED');
    const ok = packr.pack([1.5, []]);
    expectMalformed(Buffer.concat([ok, Buffer.from([0xc0])]), 'TRAILING_BYTES');
    // A declared array length of 2^32-1 in a 10-byte input fails at once.
    expectMalformed(Uint8Array.from([0x92, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0xff, 0xff, 0xff, 0xff]), 'TRUNCATED');
  });

  it('rejects a non-Uint8Array argument with ERR_INVALID_ARG', () => {
    const parse = native.parseKvEventBatch as (...a: unknown[]) => unknown;
    for (const arg of [undefined, 'abc', [0x90], new Uint16Array(2)]) {
      expect(() => parse(arg)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    }
  });
});
