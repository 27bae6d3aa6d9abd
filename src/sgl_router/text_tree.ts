// SGLang's approximate cache tree (its cache_aware policy): a radix tree over request text
// whose nodes record which workers ("tenants") were sent that prefix and when. It predicts
// each engine's prefix cache from the router's own decisions; no engine is asked.
// Sizes count UTF-16 code units of text, per tenant (SGLang counts characters).
// NativeTextTree (below) is the same tree in the addon (native/core/text_tree.h), over UTF-8
// bytes; the policy uses the native one.
// Time is a logical clock (one tick per insert) so that the LRU order is exact and testable.

import { addon } from '../native/addon.js';

export interface PrefixMatch {
  // Length of the longest prefix of the query some tenant holds, and of the query, in the
  // tree's unit (UTF-16 code units here, bytes in the native tree).
  matched: number;
  length: number;
  // The tenant holding it that used it last (null when nothing matched).
  tenant: string | null;
}

// The seam between this TypeScript tree and a native one: the cache_aware policy talks to
// this interface only, and test/sgl_router/text_tree.test.ts checks an implementation
// against a naive model.
export interface TextTree {
  insert(text: string, tenant: string): void;
  prefixMatch(text: string): PrefixMatch;
  // The tenant holding the fewest characters among `among` (all known when omitted); a
  // tenant absent from the tree holds 0.
  smallestTenant(among: readonly string[]): string | null;
  tenantSize(tenant: string): number;
  removeTenant(tenant: string): void;
  // Trims each tenant to at most maxSize characters, least recently used leaves first.
  evict(maxSize: number): void;
  // Every (prefix length, last use) a tenant holds, for tests: a map from each held prefix to its time.
  dump(tenant: string): Map<string, number>;
}

// The addon's tree behind the same interface: tenants (worker ids) are numbered here.
export class NativeTextTree implements TextTree {
  private readonly tree = new addon.TextTree();
  private readonly ids = new Map<string, number>();
  private readonly names: string[] = [];
  private readonly out = new Float64Array(3);

  private id(tenant: string): number {
    let id = this.ids.get(tenant);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(tenant, id);
      this.names.push(tenant);
    }
    return id;
  }

  insert(text: string, tenant: string): void {
    this.tree.insert(text, this.id(tenant));
  }

  prefixMatch(text: string): PrefixMatch {
    this.tree.prefixMatch(text, this.out);
    const t = this.out[1]!;
    return { matched: this.out[0]!, length: this.out[2]!, tenant: t < 0 ? null : this.names[t]! };
  }

  smallestTenant(among: readonly string[]): string | null {
    let best: string | null = null;
    let size = Infinity;
    for (const t of among) {
      const s = this.tenantSize(t);
      if (s < size) [best, size] = [t, s];
    }
    return best;
  }

  tenantSize(tenant: string): number {
    const id = this.ids.get(tenant);
    return id === undefined ? 0 : this.tree.tenantSize(id);
  }

  // The id stays reserved (ids are never reused, so a late answer cannot name another worker).
  removeTenant(tenant: string): void {
    const id = this.ids.get(tenant);
    if (id !== undefined) this.tree.removeTenant(id);
  }

  evict(maxSize: number): void {
    this.tree.evict(maxSize);
  }

  dump(tenant: string): Map<string, number> {
    const id = this.ids.get(tenant);
    return new Map(id === undefined ? [] : this.tree.dump(id));
  }
}

class Node {
  children = new Map<string, Node>();
  // tenant -> logical time of its last use of this node
  tenants = new Map<string, number>();
  constructor(
    public text: string,
    public parent: Node | null,
  ) {}
}

function commonPrefix(a: string, aFrom: number, b: string): number {
  let i = 0;
  const n = Math.min(a.length - aFrom, b.length);
  while (i < n && a.charCodeAt(aFrom + i) === b.charCodeAt(i)) i++;
  return i;
}

export class RadixTextTree implements TextTree {
  private readonly root = new Node('', null);
  private readonly sizes = new Map<string, number>();
  private clock = 0;

  insert(text: string, tenant: string): void {
    const now = ++this.clock;
    let node = this.root;
    let pos = 0;
    this.root.tenants.set(tenant, now);
    if (!this.sizes.has(tenant)) this.sizes.set(tenant, 0);
    while (pos < text.length) {
      const key = text[pos]!;
      let child = node.children.get(key);
      if (!child) {
        child = new Node(text.slice(pos), node);
        node.children.set(key, child);
      } else {
        const common = commonPrefix(text, pos, child.text);
        if (common < child.text.length) child = this.split(child, common);
      }
      if (!child.tenants.has(tenant)) this.sizes.set(tenant, this.sizes.get(tenant)! + child.text.length);
      child.tenants.set(tenant, now);
      pos += child.text.length;
      node = child;
    }
  }

  // Cuts `node` after `at` characters: a new parent holds the head, with the same tenants.
  private split(node: Node, at: number): Node {
    const parent = node.parent!;
    const head = new Node(node.text.slice(0, at), parent);
    head.tenants = new Map(node.tenants);
    parent.children.set(head.text[0]!, head);
    node.text = node.text.slice(at);
    node.parent = head;
    head.children.set(node.text[0]!, node);
    return head;
  }

  prefixMatch(text: string): PrefixMatch {
    let node = this.root;
    let pos = 0;
    let last: Node | null = null;
    while (pos < text.length) {
      const child = node.children.get(text[pos]!);
      if (!child) break;
      const common = commonPrefix(text, pos, child.text);
      pos += common;
      last = child;
      if (common < child.text.length) break;
      node = child;
    }
    if (last === null) return { matched: 0, length: text.length, tenant: null };
    let tenant: string | null = null;
    let time = -1;
    for (const [t, at] of last.tenants) {
      if (at > time || (at === time && tenant !== null && t < tenant)) [tenant, time] = [t, at];
    }
    return { matched: pos, length: text.length, tenant };
  }

  smallestTenant(among: readonly string[]): string | null {
    let best: string | null = null;
    let size = Infinity;
    for (const t of among) {
      const s = this.sizes.get(t) ?? 0;
      if (s < size) [best, size] = [t, s];
    }
    return best;
  }

  tenantSize(tenant: string): number {
    return this.sizes.get(tenant) ?? 0;
  }

  removeTenant(tenant: string): void {
    const walk = (node: Node): void => {
      for (const child of [...node.children.values()]) {
        if (!child.tenants.has(tenant)) continue;
        walk(child);
        this.drop(child, tenant);
      }
    };
    walk(this.root);
    this.root.tenants.delete(tenant);
    this.sizes.delete(tenant);
  }

  // Removes `tenant` from a node none of whose children it holds; a node nobody holds goes.
  private drop(node: Node, tenant: string): void {
    node.tenants.delete(tenant);
    this.sizes.set(tenant, (this.sizes.get(tenant) ?? 0) - node.text.length);
    if (node.tenants.size === 0 && node.parent) node.parent.children.delete(node.text[0]!);
  }

  private isLeafOf(node: Node, tenant: string): boolean {
    for (const child of node.children.values()) if (child.tenants.has(tenant)) return false;
    return true;
  }

  evict(maxSize: number): void {
    for (const [tenant, size] of [...this.sizes]) {
      if (size <= maxSize) continue;
      // The tenant's leaves, oldest first; a parent whose last held child went becomes one.
      const heap = new MinHeap<Node>();
      const collect = (node: Node): void => {
        for (const child of node.children.values()) {
          if (!child.tenants.has(tenant)) continue;
          if (this.isLeafOf(child, tenant)) heap.push(child.tenants.get(tenant)!, child);
          else collect(child);
        }
      };
      collect(this.root);
      while (this.sizes.get(tenant)! > maxSize && heap.size > 0) {
        const node = heap.pop()!;
        const parent = node.parent!;
        this.drop(node, tenant);
        if (parent !== this.root && this.isLeafOf(parent, tenant)) heap.push(parent.tenants.get(tenant)!, parent);
      }
    }
  }

  dump(tenant: string): Map<string, number> {
    const out = new Map<string, number>();
    const walk = (node: Node, prefix: string): void => {
      for (const child of node.children.values()) {
        const at = child.tenants.get(tenant);
        if (at === undefined) continue;
        const full = prefix + child.text;
        for (let i = prefix.length + 1; i <= full.length; i++) out.set(full.slice(0, i), at);
        walk(child, full);
      }
    };
    walk(this.root, '');
    return out;
  }
}

// A binary min-heap on a numeric key; ties pop in insertion order.
class MinHeap<T> {
  private items: { key: number; seq: number; value: T }[] = [];
  private seq = 0;
  get size(): number {
    return this.items.length;
  }
  push(key: number, value: T): void {
    const a = this.items;
    a.push({ key, seq: this.seq++, value });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top.value;
  }
  private less(x: { key: number; seq: number }, y: { key: number; seq: number }): boolean {
    return x.key < y.key || (x.key === y.key && x.seq < y.seq);
  }
}
