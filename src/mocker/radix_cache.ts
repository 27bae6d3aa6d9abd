// A paged radix prefix cache with SGLang's semantics: keys are page-aligned token runs, a request
// locks the path it uses (locked pages are pinned), unlocked leaves are evicted LRU, and every
// page stored or evicted becomes a KV event with SGLang's chained SHA-256 block hash.
//
// Capacity is counted in pages: pages in the tree plus pages reserved privately by requests for
// tokens not (yet) in the tree. Nodes are compressed runs of pages and split on partial matches,
// as SGLang's RadixCache does, so page size 1 stays affordable.

import { digestToInt64, pageDigest } from './page_hash.js';

export type KvEvent =
  | { type: 'BlockStored'; hash: bigint; parent: bigint | null; tokens: number[] }
  | { type: 'BlockRemoved'; hashes: bigint[] }
  | { type: 'AllBlocksCleared' };

export class CacheNode {
  tokens: number[];
  hashes: bigint[];
  digests: Buffer[];
  parent: CacheNode | null;
  readonly children = new Map<string, CacheNode>();
  ref = 0;
  lastAccess = 0;
  heapStamp = 0;
  inTree = true;
  constructor(tokens: number[], hashes: bigint[], digests: Buffer[], parent: CacheNode | null) {
    this.tokens = tokens;
    this.hashes = hashes;
    this.digests = digests;
    this.parent = parent;
  }
}

interface HeapEntry {
  key: number;
  node: CacheNode;
  stamp: number;
}

// Min-heap on lastAccess with lazy invalidation (an entry is live only while its stamp matches).
class EvictionHeap {
  private items: HeapEntry[] = [];
  get size(): number {
    return this.items.length;
  }
  push(e: HeapEntry): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.key <= e.key) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = e;
  }
  pop(): HeapEntry | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]!.key < a[l]!.key ? r : l;
        if (a[c]!.key >= last.key) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
  retain(live: (e: HeapEntry) => boolean): void {
    const kept = this.items.filter(live);
    this.items = [];
    for (const e of kept) this.push(e);
  }
}

export class PagedRadixCache {
  readonly pageSize: number;
  readonly totalPages: number;
  readonly root = new CacheNode([], [], [], null);
  private treePages = 0;
  // Tree pages no request holds: cached, evictable, not counted as used (SGLang's evictable_size).
  private evictablePages = 0;
  private privatePages = 0;
  private nodes = 0;
  private clock = 0;
  private readonly heap = new EvictionHeap();

  // `onEvent` receives every store/remove/clear in order; `enabled` false models
  // --disable-radix-cache (and a decode engine): nothing is cached, nothing is published.
  constructor(
    pageSize: number,
    totalPages: number,
    private readonly onEvent: (e: KvEvent) => void,
    readonly enabled = true,
  ) {
    this.pageSize = pageSize;
    this.totalPages = totalPages;
    this.root.ref = 1; // the root is never evicted
  }

  // Pages held by requests (locked tree pages and private reservations).
  get activePages(): number {
    return this.treePages - this.evictablePages + this.privatePages;
  }
  get evictable(): number {
    return this.evictablePages;
  }
  get freePages(): number {
    return this.totalPages - this.treePages - this.privatePages;
  }

  pagesFor(tokens: number): number {
    return Math.ceil(tokens / this.pageSize);
  }

  private key(tokens: ArrayLike<number>, at: number): string {
    if (this.pageSize === 1) return String(tokens[at]);
    let s = String(tokens[at]);
    for (let i = at + 1; i < at + this.pageSize; i++) s += ',' + tokens[i];
    return s;
  }

  // Pages of `node` (starting at page 0) that equal tokens[at..], at most `maxPages`.
  private matchingPages(node: CacheNode, tokens: ArrayLike<number>, at: number, maxPages: number): number {
    const ps = this.pageSize;
    const pages = Math.min(node.tokens.length / ps, maxPages);
    let k = 1; // the child map key already matched the first page
    outer: for (; k < pages; k++) {
      const base = k * ps;
      for (let j = 0; j < ps; j++) if (node.tokens[base + j] !== tokens[at + base + j]) break outer;
    }
    return k;
  }

  // Cut `node` after `pages` pages; returns the new upper part (which keeps node's locks).
  private split(node: CacheNode, pages: number): CacheNode {
    const cut = pages * this.pageSize;
    const parent = node.parent!;
    const upper = new CacheNode(node.tokens.slice(0, cut), node.hashes.slice(0, pages), node.digests.slice(0, pages), parent);
    upper.ref = node.ref;
    upper.lastAccess = node.lastAccess;
    parent.children.set(this.key(upper.tokens, 0), upper);
    node.tokens = node.tokens.slice(cut);
    node.hashes = node.hashes.slice(pages);
    node.digests = node.digests.slice(pages);
    node.parent = upper;
    upper.children.set(this.key(node.tokens, 0), node);
    this.nodes++;
    return upper;
  }

  // Longest cached page-aligned prefix of tokens[0..maxTokens), locked for the caller.
  matchAndLock(tokens: ArrayLike<number>, maxTokens: number): { node: CacheNode; length: number } {
    let node = this.root;
    let length = 0;
    if (this.enabled) {
      const ps = this.pageSize;
      const limit = Math.floor(Math.min(maxTokens, tokens.length) / ps) * ps;
      while (length < limit) {
        let child = node.children.get(this.key(tokens, length));
        if (!child) break;
        const childPages = child.tokens.length / ps;
        const k = this.matchingPages(child, tokens, length, (limit - length) / ps);
        if (k < childPages) child = this.split(child, k);
        node = child;
        length += k * ps;
        if (k < childPages) break;
      }
    }
    this.lock(node);
    return { node, length };
  }

  lock(node: CacheNode): void {
    for (let n: CacheNode | null = node; n && n !== this.root; n = n.parent) {
      if (n.ref++ === 0) this.evictablePages -= n.hashes.length;
    }
  }

  // Release a path. Counters rise from the leaf up, so deeper pages look older and go first
  // (Dynamo's evictor frees a sequence tail first for the same reason).
  unlock(node: CacheNode): void {
    for (let n: CacheNode | null = node; n && n !== this.root; n = n.parent) {
      if (--n.ref === 0) this.evictablePages += n.hashes.length;
      n.lastAccess = ++this.clock;
      if (n.ref === 0 && n.children.size === 0) this.pushEvictable(n);
    }
  }

  private pushEvictable(n: CacheNode): void {
    n.heapStamp++;
    this.heap.push({ key: n.lastAccess, node: n, stamp: n.heapStamp });
    if (this.heap.size > 2 * this.nodes + 1024) {
      this.heap.retain((e) => e.node.inTree && e.stamp === e.node.heapStamp && e.node.ref === 0 && e.node.children.size === 0);
    }
  }

  // Insert tokens[0..length) (page-aligned) and move the caller's lock from `locked` to the new
  // deepest node. Pages that were new to the tree are stored (one BlockStored each); the caller
  // gives back the private pages it held for them via releasePrivate().
  insertAndRelock(locked: CacheNode, tokens: ArrayLike<number>, length: number): CacheNode {
    if (!this.enabled) return locked;
    const ps = this.pageSize;
    let node = this.root;
    let pos = 0;
    while (pos < length) {
      const key = this.key(tokens, pos);
      let child = node.children.get(key);
      if (!child) {
        node = this.addLeaf(node, key, tokens, pos, length);
        break;
      }
      const childPages = child.tokens.length / ps;
      const k = this.matchingPages(child, tokens, pos, (length - pos) / ps);
      if (k < childPages) child = this.split(child, k);
      node = child;
      pos += k * ps;
    }
    this.lock(node);
    this.unlock(locked);
    return node;
  }

  private addLeaf(parent: CacheNode, key: string, tokens: ArrayLike<number>, from: number, to: number): CacheNode {
    const ps = this.pageSize;
    const pages = (to - from) / ps;
    const slice = Array.prototype.slice.call(tokens, from, to) as number[];
    const hashes: bigint[] = new Array(pages);
    const digests: Buffer[] = new Array(pages);
    let prior = parent === this.root ? null : parent.digests[parent.digests.length - 1]!;
    let parentHash = parent === this.root ? null : parent.hashes[parent.hashes.length - 1]!;
    for (let p = 0; p < pages; p++) {
      const d = pageDigest(prior, slice, p * ps, (p + 1) * ps);
      const h = digestToInt64(d);
      digests[p] = d;
      hashes[p] = h;
      this.onEvent({ type: 'BlockStored', hash: h, parent: parentHash, tokens: slice.slice(p * ps, (p + 1) * ps) });
      prior = d;
      parentHash = h;
    }
    const leaf = new CacheNode(slice, hashes, digests, parent);
    parent.children.set(key, leaf);
    this.treePages += pages;
    this.evictablePages += pages;
    this.nodes++;
    return leaf;
  }

  // Reserve pages for tokens outside the tree, evicting unlocked pages LRU as needed.
  reservePrivate(pages: number): boolean {
    if (pages <= 0) return true;
    if (this.freePages < pages) this.evict(pages - this.freePages);
    if (this.freePages < pages) return false;
    this.privatePages += pages;
    return true;
  }

  releasePrivate(pages: number): void {
    this.privatePages -= pages;
    if (this.privatePages < 0) throw new Error(`private page accounting went negative (${this.privatePages})`);
  }

  // Evict at least `pages` pages if that many are unlocked; returns how many were freed.
  evict(pages: number): number {
    let freed = 0;
    while (freed < pages && this.heap.size > 0) {
      const e = this.heap.pop()!;
      const n = e.node;
      if (!n.inTree || n.ref !== 0 || n.children.size !== 0 || e.stamp !== n.heapStamp) continue;
      const parent = n.parent!;
      parent.children.delete(this.key(n.tokens, 0));
      n.inTree = false;
      this.nodes--;
      this.treePages -= n.hashes.length;
      this.evictablePages -= n.hashes.length;
      freed += n.hashes.length;
      this.onEvent({ type: 'BlockRemoved', hashes: n.hashes });
      if (parent !== this.root && parent.ref === 0 && parent.children.size === 0) this.pushEvictable(parent);
    }
    return freed;
  }

  // Drop everything (nothing may be locked): one AllBlocksCleared.
  clear(): void {
    for (const child of this.root.children.values()) markRemoved(child);
    this.root.children.clear();
    this.treePages = 0;
    this.evictablePages = 0;
    this.nodes = 0;
    this.heap.retain(() => false);
    if (this.enabled) this.onEvent({ type: 'AllBlocksCleared' });
  }
}

function markRemoved(n: CacheNode): void {
  n.inTree = false;
  for (const c of n.children.values()) markRemoved(c);
}
