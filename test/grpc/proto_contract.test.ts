// kvgate's SGLang gRPC schema (schema/grpc) against the published one (smg-grpc-proto):
// every RPC, message and field kvgate declares must be the published one exactly (name,
// number, type, label, proto3 optional, oneof, map key), and every published field kvgate
// leaves out must be one this file names as left out on purpose.

import protobuf from 'protobufjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { publishedProtoDir } from './published_proto.js';

const SERVICE = 'sglang.grpc.scheduler.SglangScheduler';

// Published fields kvgate does not carry (it never asks for them, and a decoder skips them).
const LEFT_OUT: Record<string, string[]> = {
  'sglang.grpc.scheduler.GenerateRequest': ['mm_inputs', 'input_embeds'],
  'sglang.grpc.scheduler.GenerateStreamChunk': ['output_logprobs', 'hidden_states', 'input_logprobs'],
  'sglang.grpc.scheduler.GenerateComplete': ['output_logprobs', 'all_hidden_states', 'input_logprobs'],
};

function load(dir: string): protobuf.Root {
  const root = new protobuf.Root();
  // google/protobuf/* come with protobufjs; the rest from `dir`.
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : resolve(dir, target.replace(/^.*[/\\]/, '')));
  root.loadSync('sglang_scheduler.proto', { keepCase: true });
  root.resolveAll();
  return root;
}

interface FieldShape {
  id: number;
  type: string;
  rule: string;
  proto3Optional: boolean;
  oneof: string | null;
  keyType: string | null;
}

function shape(f: protobuf.Field): FieldShape {
  const resolved = f.resolvedType ? f.resolvedType.fullName : f.type;
  const synthetic = f.options?.['proto3_optional'] === true;
  return {
    id: f.id,
    type: resolved,
    rule: f.repeated ? 'repeated' : 'singular',
    proto3Optional: synthetic,
    oneof: f.partOf && !synthetic ? f.partOf.name : null,
    keyType: f instanceof protobuf.MapField ? f.keyType : null,
  };
}

// Every message reachable from the service's RPCs.
function reachable(root: protobuf.Root): protobuf.Type[] {
  const seen = new Map<string, protobuf.Type>();
  const visit = (t: protobuf.Type) => {
    if (seen.has(t.fullName) || t.fullName.startsWith('.google.protobuf.')) return;
    seen.set(t.fullName, t);
    for (const f of t.fieldsArray) if (f.resolvedType instanceof protobuf.Type) visit(f.resolvedType);
  };
  for (const m of root.lookupService(SERVICE).methodsArray) {
    visit(m.resolvedRequestType!);
    visit(m.resolvedResponseType!);
  }
  return [...seen.values()];
}

describe('schema/grpc/sglang_scheduler.proto matches the published smg-grpc-proto', () => {
  let ours: protobuf.Root;
  let published: protobuf.Root;
  beforeAll(() => {
    ours = load(resolve('schema/grpc'));
    published = load(publishedProtoDir());
  });

  it('declares the published RPCs with the same request, response and streaming', () => {
    const pub = published.lookupService(SERVICE);
    const mine = ours.lookupService(SERVICE).methodsArray;
    expect(mine.map((m) => m.name).sort()).toEqual(['Abort', 'FlushCache', 'Generate', 'GetLoads', 'GetModelInfo', 'GetServerInfo', 'HealthCheck']);
    for (const m of mine) {
      const p = pub.methods[m.name];
      expect(p, `published service has no ${m.name}`).toBeDefined();
      expect([m.resolvedRequestType!.fullName, m.resolvedResponseType!.fullName, !!m.requestStream, !!m.responseStream]).toEqual([
        p!.resolvedRequestType!.fullName,
        p!.resolvedResponseType!.fullName,
        !!p!.requestStream,
        !!p!.responseStream,
      ]);
    }
  });

  it('gives every field of every message the published name, number, type and label', () => {
    const types = reachable(ours);
    expect(types.length).toBeGreaterThanOrEqual(20);
    for (const t of types) {
      const name = t.fullName.slice(1);
      const p = published.lookupType(name);
      for (const f of t.fieldsArray) {
        const pf = p.fields[f.name];
        expect(pf, `${name}.${f.name} is not in the published message`).toBeDefined();
        expect(shape(f), `${name}.${f.name}`).toEqual(shape(pf!));
      }
      const missing = p.fieldsArray.map((f) => f.name).filter((n) => !(n in t.fields));
      expect(missing, `${name}: published fields kvgate neither declares nor lists as left out`).toEqual(LEFT_OUT[name] ?? []);
    }
  });
});
