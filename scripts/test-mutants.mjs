// `npm run test:mutants`: plants known bugs in native/core one at a time and checks that the
// C++ tests catch each one (and bugs in TypeScript modules, judged by their vitest suite). A mutant that survives (every test still passes) means the
// suite cannot see that class of bug; the script then fails. A mutant naming a `vitest` file
// must also fail that suite run against an addon built with the bug (KVGATE_ADDON), so a
// differential test is held to the same standard.
//
// Nothing in the real tree is touched (others build it concurrently): native/core,
// native/tests and CMakeLists.txt are copied to `--jobs` temporary trees (default 2: a mutant
// recompiles one file, on one core), each built once with ninja (the GoogleTest binaries, and
// the addon in the same build when a mutant names a vitest suite, so both share one build of
// the core; warnings not errors: a mutant is judged by the tests). Each tree takes the next
// mutant, plants it and builds and runs the test binaries one at a time, those that caught the
// file's earlier mutants first: the first failure decides (a binary stops at its first failing
// case, a vitest run at its first failing test), so most mutants relink and run one binary.
// A TypeScript mutant (`src`: a file under src/) is planted in a copy of src/ with the suite it
// names, run there against the copy. A mutant whose anchor text is not found exactly once is an
// error too, so the list cannot silently go stale when the code changes.
//
//   node scripts/test-mutants.mjs [--keep] [--dir DIR] [--jobs N] [--build-only] [name...]
//     --keep        leaves the temporary directory
//     --dir DIR     works in DIR (kept): a later run with the same DIR reuses its builds
//     --jobs N      N trees judging mutants side by side (default 2)
//     --build-only  copies and builds the native trees, and stops (.ci/run builds ahead this way)
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

// file (under native/core; or src, a TypeScript file), what it plants, the exact text replaced,
// and its replacement.
const MUTANTS = [
  {
    name: 'template-loop-last-off-by-one',
    why: 'the compiled chat template sets loop.last one iteration early',
    src: 'src/preprocess/template_compiler.ts',
    from: '          last: i === len - 1,\n',
    to: '          last: i === len - 2,\n',
    vitest: 'test/preprocess/template_compiler.test.ts',
  },
  {
    name: 'template-empty-list-truthy',
    why: 'the compiled chat template takes an empty list for true (JavaScript truthiness)',
    src: 'src/preprocess/template_compiler.ts',
    from: '  if (Array.isArray(v)) return v.length > 0;\n',
    to: '  if (Array.isArray(v)) return true;\n',
    vitest: 'test/preprocess/template_compiler.test.ts',
  },
  {
    name: 'batch-boundary',
    why: 'match() drops no unit after its first 64-block batch',
    file: 'prefix_table.cc',
    from: '      // Usually a block has the same holders as its parent: nothing to intersect.\n',
    to: '      if (depth >= kBatch) continue;\n',
  },
  {
    name: 'match-depth-off-by-one',
    why: 'a unit that drops out mid-walk is reported one block deeper',
    file: 'prefix_table.cc',
    from: '      out->push_back(UnitDepth{u, static_cast<uint32_t>(depth)});\n',
    to: '      out->push_back(UnitDepth{u, static_cast<uint32_t>(depth + 1)});\n',
  },
  {
    name: 'nested-index',
    why: "the KV index trusts equal holder counts along a query (its holds are not nested)",
    file: 'kv_index.h',
    from: '  PrefixTable table_;\n',
    to: '  PrefixTable table_{75, true};\n',
  },
  {
    name: 'nested-skip-ignores-count',
    why: 'a nested table skips the intersection even where fewer units hold the block',
    file: 'prefix_table.cc',
    from: '      c = intersect(at(hi_id), hi, out);',
    to: '      c = at(hi_id).n;',
  },
  {
    name: 'nested-gallop-stops-short',
    why: "a nested walk's gallop never probes the query's last block: a drop past its last doubling goes unseen",
    file: 'prefix_table.cc',
    from: '    if (n - 1 > d && pos[m - 1] != n - 1) pos[m++] = n - 1;\n',
    to: '',
  },
  {
    name: 'nested-drop-not-searched',
    why: 'a nested walk reports units dropping where its gallop found fewer holders, not at the first such block',
    file: 'prefix_table.cc',
    from: '    while (hi < n && hi - lo > 1) {\n',
    to: '    while (hi < n && hi - lo > 1 && false) {\n',
  },
  {
    name: 'add-all-counts-every-hold',
    why: "adding a request counts every block toward the unit's active blocks, even those it already held",
    file: 'prefix_table.cc',
    from: '    fresh += nodes[i] != kNoNode && count == 1;\n',
    to: '    fresh += nodes[i] != kNoNode;\n',
  },
  {
    name: 'same-as-survives-insert',
    why: "a new holder on a spilled block keeps its stamp: match() still trusts it has its parent's holders",
    file: 'prefix_table.cc',
    from: '  nd.n++;\n  touch(nd);\n',
    to: '  nd.n++;\n',
  },
  {
    name: 'same-as-survives-erase',
    why: "a holder gone from a spilled block keeps its stamp: match() still trusts it has its parent's holders",
    file: 'prefix_table.cc',
    from: '  } else {\n    touch(nd);\n  }\n',
    to: '  }\n',
  },
  {
    name: 'same-as-ignores-parent',
    why: "match() trusts a block found equal to its parent once, whatever the parent's holders are now",
    file: 'prefix_table.cc',
    from: '          if (prev != 0 && sh.same_as == prev) {\n',
    to: '          if (sh.same_as != 0) {\n',
  },
  {
    name: 'dense-intersect-keeps-all',
    why: "a walk through a dense block (hundreds of holders) keeps every unit matching, holder or not",
    file: 'prefix_table.cc',
    from: '      keep(u, u < d.units && (d.bits[u >> 6] >> (u & 63) & 1) != 0);\n',
    to: '      keep(u, u < d.units);\n',
  },
  {
    name: 'dense-remove-keeps-bit',
    why: "a unit's last hold dropped from a dense block leaves it listed among the block's holders",
    file: 'prefix_table.cc',
    from: '  d.bits[unit >> 6] &= ~(uint64_t{1} << (unit & 63));\n',
    to: '',
  },
  {
    name: 'dense-to-sorted-drops-counts',
    why: "a dense block going back to a sorted array forgets that a unit held it several times",
    file: 'prefix_table.cc',
    from: '[&](uint32_t u) { a[k++] = Holder{static_cast<uint16_t>(u), d->counts[u]}; }',
    to: '[&](uint32_t u) { a[k++] = Holder{static_cast<uint16_t>(u), 1}; }',
  },
  {
    name: 'remove-all-counts-not-held',
    why: "a request's free counts a block the unit never held (kNotHeld) as one of its blocks gone",
    file: 'prefix_table.cc',
    from: '    gone += remove(nodes[i], unit) == 0;\n',
    to: '    gone += remove(nodes[i], unit) + 1 <= 1;\n',
  },
  {
    name: 'remove-all-prefetch-misses-last',
    why: 'the bulk remove at a free stops one block early once the table is large enough to prefetch',
    file: 'prefix_table.cc',
    from: '  for (size_t i = 0; i < n; i++) {\n    if (ahead) {\n      if (i + 2 * kAhead < n) node_ahead',
    to: '  for (size_t i = 0; i < n - (ahead ? 1 : 0); i++) {\n    if (ahead) {\n      if (i + 2 * kAhead < n) node_ahead',
  },
  {
    name: 'members-grow-drops-last',
    why: "a small vector outgrowing its inline elements (a load-order bucket's members) loses its last one",
    file: 'small_vector.h',
    from: '    std::copy(begin(), end(), grown);\n',
    to: '    std::copy(begin(), end() - 1, grown);\n',
  },
  {
    name: 'members-erase-shifts-short',
    why: "an erase from a small vector (a unit leaving a load-order bucket) leaves the last element unshifted",
    file: 'small_vector.h',
    from: '    std::copy(d + i + 1, d + size_, d + i);\n',
    to: '    if (i + 2 < size_) std::copy(d + i + 1, d + size_ - 1, d + i);\n',
  },
  {
    name: 'wrong-parent-link',
    why: 'a stored chain hangs under its parent engine hash, not the parent block',
    file: 'kv_index.cc',
    from: '    parent_seq = table_.seq_of(node);\n',
    to: '    parent_seq = static_cast<uint64_t>(*parent);\n',
  },
  {
    name: 'skipped-decrement-on-free',
    why: "freeing a request leaves its blocks in the unit's active blocks",
    file: 'active_sequences.cc',
    from: '  drop<uint64_t>(load.active_blocks, gone);\n',
    to: '  (void)gone;\n',
  },
  {
    name: 'tail-not-promoted',
    why: "a request sharing another request's tail keeps its own copy: two tails begin with one block",
    file: 'active_sequences.cc',
    from: '    if (other != U64Map::kNone) {\n',
    to: '    if (false && other != U64Map::kNone) {\n',
  },
  {
    name: 'tail-not-walked',
    why: "a walk stops where the query's nodes end: the blocks of a tail never match",
    file: 'active_sequences.cc',
    from: '  if (tails_.size() == 0) return;\n',
    to: '  return;\n',
  },
  {
    name: 'tail-rest-unkeyed',
    why: "a tail's blocks left after a promotion are not keyed again: a walk cannot go on into them",
    file: 'active_sequences.cc',
    from: '  if (!o.tail.empty()) tails_.put(o.tail[0], slot);\n',
    to: '',
  },
  {
    name: 'now-holding-not-refiled',
    why: "a unit whose tail became nodes stays filed as holding no active block: the pruned scan gives it no base active overlap",
    file: 'kv_router.cc',
    from: '  if (now_holding != U64Map::kNone) refile(now_holding);\n',
    to: '',
    vitest: 'test/native/differential.test.ts',
  },
  {
    name: 'wrong-hash-seed',
    why: 'local hashes of blocks of 5-32 tokens use seed 1338 instead of 1337',
    file: 'block_hash.cc',
    from: 'return xxh3::hash_17to128(in, len, kBlockHashSeed);',
    to: 'return xxh3::hash_17to128(in, len, kBlockHashSeed + 1);',
  },
  {
    name: 'wrong-long-block-secret',
    why: 'local hashes of blocks over 60 tokens use the secret of seed 1338',
    file: 'block_hash.cc',
    from: 'constexpr xxh3::Secret kBlockSecret = xxh3::derive_secret(kBlockHashSeed);',
    to: 'constexpr xxh3::Secret kBlockSecret = xxh3::derive_secret(kBlockHashSeed + 1);',
  },
  {
    name: 'xxh3-avx2-lanes-not-swapped',
    why: "the AVX2 accumulate adds each lane's own data, not its neighbour's (lane i ^ 1)",
    file: 'xxh3.cc',
    from: '_mm256_shuffle_epi32(data, _MM_SHUFFLE(1, 0, 3, 2));',
    to: '_mm256_shuffle_epi32(data, _MM_SHUFFLE(3, 2, 1, 0));',
  },
  {
    name: 'xxh3-avx2-scramble-high-half',
    why: 'the AVX2 scramble shifts the high half of acc * PRIME32_1 by 31 bits, not 32',
    file: 'xxh3.cc',
    from: 'acc.v[h] = _mm256_add_epi64(lo, _mm256_slli_epi64(hi, 32));',
    to: 'acc.v[h] = _mm256_add_epi64(lo, _mm256_slli_epi64(hi, 31));',
  },
  {
    name: 'xxh3-avx512-scramble-shift',
    why: 'the AVX-512 scramble xors acc >> 46 instead of acc >> 47',
    file: 'xxh3.cc',
    from: '_mm512_srli_epi64(acc.v, 47)',
    to: '_mm512_srli_epi64(acc.v, 46)',
  },
  {
    name: 'xxh3-avx512-key-unmixed',
    why: 'the AVX-512 accumulate multiplies the halves of the data, not of data ^ secret',
    file: 'xxh3.cc',
    from: 'const __m512i key = _mm512_xor_si512(data, _mm512_loadu_si512(secret));',
    to: 'const __m512i key = data;',
  },
  {
    name: 'prompt-hashes-parent-ignored',
    why: 'the one-pass prompt hashes start a new chain under a parent',
    file: 'block_hash.cc',
    from: 'uint64_t prev = parent ? chain(*parent, local) : local;',
    to: 'uint64_t prev = local;',
  },
  {
    name: 'chain-words-swapped',
    why: 'a chain step hashes le_u64(local) ++ le_u64(prev), the two words swapped',
    file: 'block_hash.cc',
    from: 'return xxh3::hash_9to16(prev, local, 16, kBlockHashSeed);',
    to: 'return xxh3::hash_9to16(local, prev, 16, kBlockHashSeed);',
  },
  {
    name: 'hash-prompt-chunk-restarts-chain',
    why: "the router's hash_prompt starts each 16-block chunk as a new chain",
    file: 'kv_router.cc',
    from: 'i == 0 ? nullptr : &seq_[i - 1]',
    to: 'nullptr',
  },
  {
    name: 'no-tag-collision-fallback',
    why: 'a slot whose 32-bit tag matches another block ends the walk',
    file: 'prefix_table.cc',
    from: '        ids[k] = find(seq[start + k]);\n',
    to: '        ids[k] = kNoNode;\n',
  },
  {
    name: 'not-held-looks-like-last-hold',
    why: 'remove() of a block the unit does not hold returns 0 (issue 9 item 1)',
    file: 'prefix_table.cc',
    from: 'if (k == nd.n || h[k].unit != u) return kNotHeld;',
    to: 'if (k == nd.n || h[k].unit != u) return 0;',
  },
  {
    name: 'approx-ttl-not-refreshed',
    why: 'routing a recorded prompt again does not extend its TTL',
    file: 'kv_router.cc',
    from: '      approx_pool_[e].expiry = expiry;\n',
    to: '',
  },
  {
    name: 'free-on-prefill-done',
    why: "a room is freed when its prefill finishes, before the decode leg's first token",
    file: 'transfer_coordinator.cc',
    from: '        enter(i, RoomState::kPrefillDone, now_ms);\n',
    to: '        release(i);\n',
    vitest: 'test/native/transfer_coordinator.diff.test.ts',
  },
  {
    name: 'deadline-off-by-one',
    why: 'a room whose deadline equals the poll time is not expired yet',
    file: 'transfer_coordinator.cc',
    from: '      if (r.deadline <= now_ms) {\n',
    to: '      if (r.deadline < now_ms) {\n',
    vitest: 'test/native/transfer_coordinator.diff.test.ts',
  },
  {
    name: 'pending-not-confirmed',
    why: "a unit's KV events storing a pending prompt leave it pending",
    file: 'kv_router.cc',
    from: '    if (s < pending_by_slot_.size() && !pending_by_slot_[s].empty()) pending_confirm(s);\n',
    to: '',
  },
  {
    name: 'pending-depth-all-pending',
    why: "a unit with pending and confirmed requests counts its active overlap as pending",
    file: 'kv_router.cc',
    from: '  if (list.size() == active_.load(s).requests) return active_depth;\n',
    to: '  return active_depth;\n',
    vitest: 'test/native/differential.test.ts',
  },
  {
    name: 'busy-not-passed-over',
    why: 'route() picks among every candidate although some are free and others busy',
    file: 'kv_router.h',
    from: 'return not_busy_.empty() ? candidates_ : not_busy_;',
    to: 'return candidates_;',
  },
  {
    name: 'load-order-stale-after-prefill',
    why: "a finished prefill leaves the unit filed under its old load (the pruned scan's order)",
    file: 'kv_router.cc',
    from: '  if (!active_.mark_prefill_done(request_id)) return false;\n  refile(s);\n',
    to: '  if (!active_.mark_prefill_done(request_id)) return false;\n',
  },
  {
    name: 'load-order-matched-bucket',
    why: "the pruned scan takes a load's first bucket even when the request matched all its members",
    file: 'load_order.cc',
    from: '      while (same_load(b) && b->second.members.size() == excluded_[b->second.id]) ++b;\n',
    to: '',
  },
  {
    name: 'load-order-tree-ignored',
    why: "the pruned scan's tie-break ignores the tree size of unmatched units",
    file: 'load_order.cc',
    from: '    if (t.logit != best || !join(t.bucket->first.tree)) continue;\n',
    to: '    if (t.logit != best || !join(tree)) continue;\n',
  },
  {
    name: 'load-order-tie-not-reset',
    why: "the pruned scan's tie keeps counting the units of a larger tree once a smaller one joins it",
    file: 'load_order.cc',
    from: '      count = sources = 0;\n',
    to: '',
  },
  {
    name: 'load-order-excluded-kept',
    why: "a route's matched units stay excluded from their buckets in the next route's scan",
    file: 'load_order.cc',
    from: '  for (const Scored& s : matched) excluded_[id_at_[s.pos]] = 0;\n',
    to: '',
  },
  {
    name: 'load-order-alone-move-class',
    why: 'a unit moving alone with its bucket to other holds is not counted in its new class',
    file: 'load_order.cc',
    from: '      class_size_[k.holds]--;\n      class_size_[holds]++;\n',
    to: '      class_size_[k.holds]--;\n',
  },
  {
    name: 'scored-base-without-holds',
    why: 'the pruned scan scores a matched unit caching nothing (only active blocks) at the cached base overlap',
    file: 'kv_router.cc',
    from: '  c.overlap = mk.overlap != 0 || (mk.holds & LoadOrder::kCached) == 0 ? mk.overlap : base_.overlap;\n',
    to: '  c.overlap = mk.overlap != 0 ? mk.overlap : base_.overlap;\n',
  },
  {
    name: 'scored-tree-stale',
    why: "the pruned scan scores a matched unit with the tree size it had before its last KV event",
    file: 'kv_router.cc',
    from: '  mk.tree = index_.unit_blocks(s);\n',
    to: '',
  },
  {
    name: 'refiles-not-flushed',
    why: 'the pruned scan scores and orders units by the loads of their last route before the pool went stale',
    file: 'kv_router.cc',
    from: '    flush_refiles();\n',
    to: '',
  },
  {
    name: 'refile-flag-kept',
    why: 'a unit refiled once is never refiled again (its flag stays set)',
    file: 'kv_router.cc',
    from: '  mk.refile = 0;\n',
    to: '',
  },
  {
    name: 'own-term-dropped',
    why: "the kv cost leaves out the prompt's own uncached blocks (own_weight)",
    file: 'scheduler.h',
    from: '  return overlap_weight * prefill_blocks + decode_blocks - pending_weight * extra + own_weight * own_blocks;\n',
    to: '  return overlap_weight * prefill_blocks + decode_blocks - pending_weight * extra;\n',
  },
  {
    name: 'load-order-unmatched-without-own',
    why: "the pruned scan costs unmatched units without the own term (cheaper than the full scan's cost)",
    file: 'load_order.cc',
    from: '        const double logit = kv_logit(c, isl, block_size_, weight_, pending_weight, own_weight);\n',
    to: '        const double logit = kv_logit(c, isl, block_size_, weight_, pending_weight);\n',
  },
  {
    name: 'own-queue-ignored',
    why: "the own weight stays fixed however long the fleet's prefill queue (own_queue_weight ignored)",
    file: 'scheduler.h',
    from: '  return own_weight * (1 + own_queue_weight * static_cast<double>(prefilling) / static_cast<double>(units));\n',
    to: '  return own_weight;\n',
  },
  {
    name: 'prefilling-kept-on-free',
    why: "a request freed before its first token stays in the fleet's prefill queue (the own weight only grows)",
    file: 'active_sequences.cc',
    from: '    drop(load.prefill_tokens, r.prefill_tokens);\n    prefilling_--;\n',
    to: '    drop(load.prefill_tokens, r.prefill_tokens);\n',
  },
  {
    name: 'base-class-ignored',
    why: 'the pruned scan costs a unit caching nothing (a new worker) as if it had the base overlap every caching unit has',
    file: 'load_order.cc',
    from: '    c.overlap = (holds & kCached) != 0 ? base.overlap : 0;\n',
    to: '    c.overlap = base.overlap;\n',
    vitest: 'test/native/differential.test.ts',
  },
  {
    name: 'base-active-ignored',
    why: 'the pruned scan costs the units at the base as if none of the prompt were active on them',
    file: 'load_order.cc',
    from: '    c.active_overlap = (holds & kActive) != 0 ? base.active_overlap : 0;\n',
    to: '    c.active_overlap = 0;\n',
    vitest: 'test/native/differential.test.ts',
  },
  {
    name: 'base-depth-off-by-one',
    why: 'match_past_common reports one block fewer than every unit holds',
    file: 'prefix_table.cc',
    from: '          common = depth + 1;\n',
    to: '          common = depth;\n',
  },
  {
    name: 'base-pending-unread',
    why: "the pruned scan leaves units at the base whose pending blocks pass their cached ones",
    file: 'kv_router.cc',
    from: '    if (pending_head_ != kNoEntry && base_.active_overlap > 0 &&\n',
    to: '    if (false && base_.active_overlap > 0 &&\n',
  },
  {
    name: 'find-base-lists-empty-units',
    why: 'findMatches past a common base lists a unit in use that holds no block (a cleared cache) at the base depth',
    file: 'kv_router.cc',
    from: '      if (!index_.holds_any(s)) gaps_.push_back(s);\n',
    to: '',
    vitest: 'test/native/find_matches.diff.test.ts',
  },
  {
    name: 'find-base-depth-only',
    why: 'findMatches past a common base reports every unit at the base depth, the deeper ones too',
    file: 'kv_router.cc',
    from: '    rows.depth[m.unit - static_cast<size_t>(before)] = m.depth;\n',
    to: '',
    vitest: 'test/native/find_matches.diff.test.ts',
  },
  {
    name: 'find-row-ignores-gaps',
    why: "findMatches patches a deeper unit's depth into the row of its slot, not counting the empty slots before it",
    file: 'kv_router.cc',
    from: '    rows.depth[m.unit - static_cast<size_t>(before)] = m.depth;\n',
    to: '    rows.depth[m.unit - 0 * static_cast<size_t>(before)] = m.depth;\n',
  },
  {
    name: 'find-gaps-free-slots-only',
    why: 'findMatches takes the free slots for the only empty ones even when a unit in use holds nothing',
    file: 'kv_router.cc',
    from: '  if (holding + free_slots_.size() == slots) {\n',
    to: '  if (true) {\n',
  },
  {
    name: 'find-gaps-unsorted',
    why: 'findMatches copies the runs between free slots in the order they were freed',
    file: 'kv_router.cc',
    from: '    std::sort(gaps_.begin(), gaps_.end());\n',
    to: '',
  },
  {
    name: 'holding-units-kept-on-clear',
    why: 'a cleared unit still counts as holding blocks (findMatches then takes every slot for a holder)',
    file: 'kv_index.cc',
    from: '  if (map.size() > 0) holding_units_--;\n',
    to: '',
  },
  {
    name: 'bpe-case-sensitive-contractions',
    why: "the Qwen2/Llama-3 contractions match only lower case ('S and 'ſ split apart)",
    file: 'bpe.cc',
    from: "      return x == static_cast<uint32_t>(lower - 'a' + 'A') || (lower == 's' && x == 0x17f);\n",
    to: '      return false;\n',
    vitest: 'test/native/bpe.diff.test.ts',
  },
  {
    name: 'bpe-no-whitespace-lookahead',
    why: 'a whitespace run before a word keeps its last space (\\s+(?!\\S) ignored)',
    file: 'bpe.cc',
    from: '  return e < n && e - i >= 2 ? e - 1 : e;\n',
    to: '  return e;\n',
    vitest: 'test/native/bpe.diff.test.ts',
  },
  {
    name: 'bpe-rightmost-tie',
    why: 'among pairs of equal rank the rightmost merges first',
    file: 'bpe.cc',
    from: 'a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;',
    to: 'a.rank != b.rank ? a.rank > b.rank : a.pos < b.pos;',
    vitest: 'test/native/bpe.diff.test.ts',
  },
];

const args = process.argv.slice(2);
const option = (name) => {
  const at = args.indexOf(name);
  return at >= 0 ? args.splice(at, 2)[1] : undefined;
};
const dirArg = option('--dir');
const jobs = Math.max(1, Number(option('--jobs') ?? 2));
const keep = args.includes('--keep') || dirArg !== undefined;
const buildOnly = args.includes('--build-only');
const only = args.filter((a) => !a.startsWith('--'));
const mutants = only.length ? MUTANTS.filter((m) => only.includes(m.name)) : MUTANTS;
// Grouped by file, so that a tree's next mutant mostly recompiles the file it just restored;
// mutants in headers last: one recompiles every file that includes its header twice
// (planted, then restored by the tree's next mutant); at the end, the restore is not built.
const inHeader = (m) => (m.file.endsWith('.h') ? 1 : 0);
const nativeMutants = mutants
  .filter((m) => m.file)
  .sort((a, b) => inHeader(a) - inHeader(b) || a.file.localeCompare(b.file));
const tsMutants = mutants.filter((m) => m.src);

const dir = dirArg ? resolve(dirArg) : mkdtempSync(join(tmpdir(), 'kvgate-mutants-'));
mkdirSync(dir, { recursive: true });

// With ccache on PATH the trees compile through it, paths taken relative to `dir`: the second
// tree's build and every file restored after a mutant are cache hits (the same source, the same
// flags); only a planted mutant compiles. The cache lives in `dir`.
const ccache = sh('ccache', ['--version'], dir).ok;
if (ccache) Object.assign(process.env, { CCACHE_DIR: join(dir, 'ccache'), CCACHE_BASEDIR: dir, CCACHE_NOHASHDIR: 'true' });
const launcher = ccache ? ['-DCMAKE_CXX_COMPILER_LAUNCHER=ccache'] : [];

function sh(cmd, cmdArgs, cwd, timeoutMs = 300_000, env = {}) {
  const r = spawnSync(cmd, cmdArgs, { cwd, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20, env: { ...process.env, ...env } });
  return { ok: r.status === 0, timedOut: r.error?.code === 'ETIMEDOUT', out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

// The same, without blocking: the trees run their mutants side by side. A command past its
// timeout is killed and reported as timed out.
function run(cmd, cmdArgs, cwd, timeoutMs = 300_000, env = {}) {
  return new Promise((done) => {
    const child = spawn(cmd, cmdArgs, { cwd, env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      done({ ok: status === 0 && !timedOut, timedOut, out });
    });
  });
}

// vitest in `cwd`, stopping at the first failing test; `ok` = every test passed.
const vitestArgs = (files) => ['vitest', 'run', '--bail=1', ...files];
const vitest = (files, cwd, env = {}) => sh('npx', vitestArgs(files), cwd, 600_000, env);

// TypeScript mutants: a copy of src/ (and what the suites read) with the mutant planted, the
// suite run in the copy (node_modules linked).
const tsRoot = join(dir, 'ts');
function runTsMutants() {
  for (const d of ['src', 'test/preprocess', 'assets/qwen3-tokenizer']) cpSync(join(root, d), join(tsRoot, d), { recursive: true });
  for (const f of ['package.json', 'tsconfig.json', 'vitest.config.ts']) cpSync(join(root, f), join(tsRoot, f));
  link(join(root, 'node_modules'), join(tsRoot, 'node_modules'));
  const files = [...new Set(tsMutants.map((m) => m.vitest))];
  const base = vitest(files, tsRoot);
  if (!base.ok) throw new Error(`${files.join(', ')} do not pass on the unmutated copy:\n${base.out.slice(-4000)}`);
  for (const m of tsMutants) {
    const path = join(tsRoot, m.src);
    const original = readFileSync(path, 'utf8');
    const hits = original.split(m.from).length - 1;
    if (hits !== 1) {
      console.log(`  ${m.name}: STALE (its anchor occurs ${hits} times in ${m.src}; update the mutant)`);
      failed++;
      continue;
    }
    writeFileSync(path, original.replace(m.from, m.to));
    const r = vitest([m.vitest], tsRoot);
    writeFileSync(path, original);
    if (r.ok) {
      console.log(`  ${m.name}: SURVIVED ${m.vitest} (${m.why})`);
      failed++;
    } else console.log(`  ${m.name}: caught (${m.vitest.split('/').pop()})`);
  }
}

let failed = 0;
const started = Date.now();
try {
  if (tsMutants.length && !buildOnly) runTsMutants();
  if (nativeMutants.length) await runNativeMutants();
} catch (err) {
  console.error(err.message);
  failed++;
} finally {
  if (!keep) rmSync(dir, { recursive: true, force: true });
}
const secs = Math.round((Date.now() - started) / 1000);
if (buildOnly) {
  console.log(`${failed ? 'not built' : `built in ${dir}`} (${secs} s)`);
  process.exit(failed ? 1 : 0);
}
console.log(`\n${mutants.length} mutants, ${failed ? `${failed} not caught or broken` : 'all caught'} (${secs} s)`);
process.exit(failed ? 1 : 0);

function sameFile(a, b) {
  try {
    return statSync(a).isFile() && readFileSync(a).equals(readFileSync(b));
  } catch {
    return false;
  }
}

// A symbolic link, unless a run in the same --dir made it already.
function link(target, path) {
  if (!existsSync(path)) symlinkSync(target, path);
}

// One copy of the native tree, configured and built (`--jobs` of them, each planting its own
// mutants, so that both cores compile: a mutant recompiles one file, on one core).
function makeTree(at, suites) {
  mkdirSync(join(at, 'native'), { recursive: true });
  // Only files that differ are copied: a built --dir does not look changed to ninja.
  const copy = (path) => cpSync(join(root, path), join(at, path), { recursive: true, filter: (from, to) => !sameFile(from, to) });
  copy('native/core');
  copy('native/tests');
  copy('CMakeLists.txt');
  const build = join(at, 'build');
  // With a vitest suite to run, cmake-js configures the tree: the addon and the tests in one build.
  let conf;
  if (suites.length) {
    // The addon needs the binding and node-addon-api / cmake-js (the repository's node_modules).
    copy('native/binding');
    link(join(root, 'node_modules'), join(at, 'node_modules'));
    conf = sh('npx', ['cmake-js', 'configure', '-d', at, '-O', build, '--CDKVGATE_TESTS=ON', '--CDKVGATE_WERROR=OFF', ...launcher.map((d) => `--C${d.slice(1)}`)], at);
  } else {
    conf = sh('cmake', ['-S', at, '-B', build, '-G', 'Ninja', '-DKVGATE_TESTS=ON', '-DKVGATE_WERROR=OFF', '-DCMAKE_BUILD_TYPE=Release', ...launcher], at);
  }
  if (!conf.ok) throw new Error(`cmake configure failed in ${at}:\n${conf.out.slice(-4000)}`);
  const b = sh('cmake', ['--build', build, '-j2'], at, 900_000);
  if (!b.ok) throw new Error(`the build failed in ${at}:\n${b.out.slice(-4000)}`);
  const tests = sh('ctest', ['--test-dir', build, '-N'], at)
    .out.split('\n')
    .flatMap((l) => l.match(/Test\s+#\d+: (\w+)/)?.slice(1) ?? []);
  return { at, build, core: join(at, 'native', 'core'), tests, addon: join(build, 'Release', 'kvgate.node') };
}

async function runNativeMutants() {
  const suites = [...new Set(nativeMutants.flatMap((m) => (m.vitest ? [m.vitest] : [])))];
  const trees = [];
  for (let k = 0; k < Math.min(jobs, nativeMutants.length); k++) trees.push(makeTree(join(dir, `tree${k}`), suites));
  if (buildOnly) return;

  // Baselines: every test binary of every tree passes, and the suites on the first tree's
  // addon (the trees are the same sources built the same way). Each binary's time orders the
  // first runs below (quick binaries first).
  const seconds = new Map();
  const baselineStart = Date.now();
  for (const t of trees) {
    for (const name of t.tests) {
      const s = Date.now();
      const r = sh(join(t.build, name), [], t.at, 600_000);
      if (!r.ok) throw new Error(`${name} does not pass unmutated, so no mutant can be judged:\n${r.out.slice(-4000)}`);
      seconds.set(name, Math.max(seconds.get(name) ?? 0, (Date.now() - s) / 1000));
    }
    if (suites.length && t === trees[0]) {
      const r = vitest(suites, root, { KVGATE_ADDON: t.addon });
      if (!r.ok) throw new Error(`${suites.join(', ')} do not pass on the unmutated addon of ${t.at}:\n${r.out.slice(-4000)}`);
    }
  }
  console.log(`baseline: the C++ tests${suites.length ? ` and ${suites.join(', ')}` : ''} pass (${trees.length} trees in ${dir}; ${Math.round((Date.now() - baselineStart) / 1000)} s)`);
  const quickFirst = [...trees[0].tests].sort((a, b) => seconds.get(a) - seconds.get(b));
  // Per file, the binaries that caught its mutants, the latest first: a file's next mutant
  // tries them first (each binary is built and run alone, and the first to fail decides, so
  // most mutants build and run one binary).
  const caughtBy = new Map();
  const order = (file) => {
    const first = caughtBy.get(file) ?? [];
    return [...first, ...quickFirst.filter((n) => !first.includes(n))];
  };

  // A mutant, planted in a tree: its test binaries one at a time until one fails (a timeout
  // counts as caught: a mutant may loop forever), then its vitest suite if it names one.
  async function judge(t, m) {
    const path = join(t.core, m.file);
    const original = readFileSync(path, 'utf8');
    const hits = original.split(m.from).length - 1;
    if (hits !== 1) return { verdict: 'stale', text: `STALE (its anchor occurs ${hits} times in native/core/${m.file}; update the mutant)` };
    writeFileSync(path, original.replace(m.from, m.to));
    try {
      let caught;
      for (const name of order(m.file)) {
        const b = await run('cmake', ['--build', t.build, '--target', name, '-j1'], t.at, 900_000);
        if (!b.ok) return { verdict: 'broken', text: `does not compile (fix the mutant)\n${b.out.slice(-2000)}` };
        const r = await run(join(t.build, name), [], t.at, 120_000, { GTEST_FAIL_FAST: '1' });
        if (!r.ok) {
          caught = `${name} ${r.timedOut ? 'timed out' : 'failed'}`;
          caughtBy.set(m.file, [name, ...(caughtBy.get(m.file) ?? []).filter((n) => n !== name)]);
          break;
        }
      }
      if (!caught) return { verdict: 'survived', text: `SURVIVED (${m.why}): no test failed` };
      if (!m.vitest) return { verdict: 'caught', text: `caught (${caught})` };
      const b = await run('cmake', ['--build', t.build, '--target', 'kvgate', '-j1'], t.at, 900_000);
      if (!b.ok) return { verdict: 'broken', text: `the addon does not compile (fix the mutant)\n${b.out.slice(-2000)}` };
      const v = await run('npx', vitestArgs([m.vitest]), root, 600_000, { KVGATE_ADDON: t.addon });
      if (v.ok) return { verdict: 'survived', text: `SURVIVED ${m.vitest} (${m.why}): the C++ tests caught it, the vitest suite did not` };
      return { verdict: 'caught', text: `caught (${caught}, ${m.vitest.split('/').pop()})` };
    } finally {
      writeFileSync(path, original);
    }
  }

  // Each tree takes the next mutant of the queue when it is done with one.
  const queue = [...nativeMutants];
  await Promise.all(
    trees.map(async (t) => {
      for (let m = queue.shift(); m; m = queue.shift()) {
        const r = await judge(t, m);
        if (r.verdict !== 'caught') failed++;
        console.log(`  ${m.name}: ${r.text}`);
      }
    }),
  );
}
