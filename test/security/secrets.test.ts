// Secrets of serve and worker: read from files (trailing newline dropped) or variables, empty
// ones refused, compared in constant time, and hidden in logged command lines.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../src/config.js';
import { bearerMatches, clusterSecrets, readSecret, redactArgs, sameSecret } from '../../src/security/secrets.js';

const dir = mkdtempSync(join(tmpdir(), 'kvgate-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string) => (writeFileSync(join(dir, name), content), join(dir, name));

describe('secrets', () => {
  it('come from a file (its trailing newline dropped) before a variable; empty or unreadable ones are refused without showing them', () => {
    expect(readSecret('cluster-token-file', file('t', 's3cret\n'), 'X', { X: 'env' })).toBe('s3cret');
    expect(readSecret('cluster-token-file', undefined, 'X', { X: 'env' })).toBe('env');
    expect(readSecret('cluster-token-file', undefined, 'X', {})).toBeUndefined();
    expect(() => readSecret('cluster-token-file', file('e', '\n'), 'X', {})).toThrow(`--cluster-token-file: ${join(dir, 'e')} is empty`);
    expect(() => readSecret('cluster-token-file', join(dir, 'none'), 'X', {})).toThrow(/cannot read .* \(ENOENT\)/);
    expect(() => readSecret('cluster-token-file', undefined, 'KVGATE_CLUSTER_TOKEN', { KVGATE_CLUSTER_TOKEN: '' })).toThrow('KVGATE_CLUSTER_TOKEN is set but empty');
  });

  it('are compared whole, whatever their lengths, and read from Bearer headers as SGLang does', () => {
    expect(sameSecret('abc', 'abc')).toBe(true);
    expect(sameSecret('abc', 'abcd')).toBe(false);
    expect(sameSecret('', 'abc')).toBe(false);
    expect(bearerMatches('Bearer k1', 'k1')).toBe(true);
    expect(bearerMatches('bearer k1', 'k1')).toBe(true);
    expect(bearerMatches('Bearer k1 ', 'k1')).toBe(false);
    expect(bearerMatches('Basic k1', 'k1')).toBe(false);
    expect(bearerMatches(undefined, 'k1')).toBe(false);
  });

  it('are hidden in a logged command line', () => {
    expect(redactArgs(['--model-path', 'm', '--api-key', 'k1', '--admin-api-key=k2', '--port', '1'])).toEqual(['--model-path', 'm', '--api-key', '<redacted>', '--admin-api-key=<redacted>', '--port', '1']);
  });

  it('etcd and NATS credentials go in pairs, and NATS takes a user or a token', () => {
    const o = (args: string[]) => parseCommandLine('worker', args).options;
    expect(clusterSecrets(o(['--etcd-username', 'root']), { KVGATE_ETCD_PASSWORD: 'pw' }).etcd).toEqual({ auth: { username: 'root', password: 'pw' } });
    expect(() => clusterSecrets(o(['--etcd-username', 'root']), {})).toThrow('etcd authentication needs both --etcd-username and a password');
    expect(() => clusterSecrets(o([]), { KVGATE_NATS_PASSWORD: 'pw' })).toThrow('NATS user authentication needs both --nats-user and a password');
    expect(() => clusterSecrets(o(['--nats-user', 'u']), { KVGATE_NATS_PASSWORD: 'pw', KVGATE_NATS_TOKEN: 't' })).toThrow('NATS takes a user and password or a token, not both');
    expect(clusterSecrets(o(['--nats-token-file', file('nt', 'tok\n')]), {}).nats).toEqual({ token: 'tok' });
    expect(clusterSecrets(o([]), { KVGATE_CLUSTER_TOKEN: 'c', KVGATE_ENGINE_API_KEY: 'e' })).toEqual({ clusterToken: 'c', engineApiKey: 'e', etcd: {}, nats: {} });
  });
});
