// Cluster secrets and TLS files of `serve` and `worker` (issue 12): the cluster token of the
// request plane, the engine API key, and the credentials and TLS files of etcd and NATS.
//
// Secrets come from an environment variable or a file (the `--*-file` flags), never from a
// flag value: a command line is readable by every user of the machine (/proc/<pid>/cmdline)
// and ends up in logs. They are never logged; redactArgs() hides the one that must go on an
// engine's command line (SGLang takes its key only as --api-key).

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { KvgateError } from '../errors.js';

export const ENV = {
  clusterToken: 'KVGATE_CLUSTER_TOKEN',
  engineApiKey: 'KVGATE_ENGINE_API_KEY',
  etcdPassword: 'KVGATE_ETCD_PASSWORD',
  natsPassword: 'KVGATE_NATS_PASSWORD',
  natsToken: 'KVGATE_NATS_TOKEN',
} as const;

// The file wins over the variable (an explicit flag); a file's trailing newline is not part
// of the secret. An empty secret is refused: it would silently mean "no authentication".
export function readSecret(fileFlag: string, file: string | undefined, envName: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  let value: string | undefined;
  if (file !== undefined) {
    try {
      value = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new KvgateError('invalid_config', `--${fileFlag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (value === '') throw new KvgateError('invalid_config', `--${fileFlag}: ${file} is empty`);
    return value;
  }
  value = env[envName];
  if (value === undefined) return undefined;
  if (value === '') throw new KvgateError('invalid_config', `${envName} is set but empty (unset it for no secret)`);
  return value;
}

// Constant time, whatever the lengths: both sides are hashed to 32 bytes first.
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

// The secret of an `Authorization: Bearer <secret>` header (scheme case-insensitive, as SGLang reads it).
export function bearerMatches(header: string | undefined, expected: string): boolean {
  const m = /^bearer (.*)$/is.exec(header ?? '');
  return sameSecret(m ? m[1]! : '', expected);
}

// An environment for a child that needs none of kvgate's secrets (an engine).
export function withoutSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const name of Object.values(ENV)) delete out[name];
  return out;
}

// A command line for the log, with the values of secret flags replaced.
export function redactArgs(args: readonly string[], secretFlags: readonly string[] = ['--api-key', '--admin-api-key']): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    if (eq > 0 && secretFlags.includes(a.slice(0, eq))) out.push(`${a.slice(0, eq)}=<redacted>`);
    else if (secretFlags.includes(a) && i + 1 < args.length) {
      out.push(a, '<redacted>');
      i++;
    } else out.push(a);
  }
  return out;
}

export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

export interface EtcdAccess {
  auth?: { username: string; password: string };
  tls?: TlsFiles;
}

export interface NatsAccess {
  user?: string;
  pass?: string;
  token?: string;
  tls?: TlsFiles;
}

export interface ClusterSecrets {
  // Required on every request-plane connection (frontend -> worker agent), when set.
  clusterToken?: string;
  // Given to the engine (--api-key) and sent on every engine request, when set.
  engineApiKey?: string;
  etcd: EtcdAccess;
  nats: NatsAccess;
}

// The flags of config.ts's `cluster` group, as parsed.
export interface ClusterFlags {
  clusterTokenFile?: string;
  engineApiKeyFile?: string;
  etcdUsername?: string;
  etcdPasswordFile?: string;
  etcdCaFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
  natsUser?: string;
  natsPasswordFile?: string;
  natsTokenFile?: string;
  natsCaFile?: string;
  natsCertFile?: string;
  natsKeyFile?: string;
}

export function tlsFiles(prefix: string, ca?: string, cert?: string, key?: string): TlsFiles | undefined {
  if ((cert === undefined) !== (key === undefined)) throw new KvgateError('invalid_config', `--${prefix}-cert-file and --${prefix}-key-file go together (a certificate and its key)`);
  for (const [flag, f] of [['ca', ca], ['cert', cert], ['key', key]] as const) {
    if (f === undefined) continue;
    try {
      readFileSync(f);
    } catch (err) {
      throw new KvgateError('invalid_config', `--${prefix}-${flag}-file: cannot read ${f} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  if (ca === undefined && cert === undefined) return undefined;
  return { ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined ? { cert, key: key! } : {}) };
}

export function clusterSecrets(o: ClusterFlags, env: NodeJS.ProcessEnv = process.env): ClusterSecrets {
  const etcdPassword = readSecret('etcd-password-file', o.etcdPasswordFile, ENV.etcdPassword, env);
  if ((o.etcdUsername === undefined) !== (etcdPassword === undefined)) {
    throw new KvgateError('invalid_config', `etcd authentication needs both --etcd-username and a password (${ENV.etcdPassword} or --etcd-password-file)`);
  }
  const natsPass = readSecret('nats-password-file', o.natsPasswordFile, ENV.natsPassword, env);
  const natsToken = readSecret('nats-token-file', o.natsTokenFile, ENV.natsToken, env);
  if ((o.natsUser === undefined) !== (natsPass === undefined)) {
    throw new KvgateError('invalid_config', `NATS user authentication needs both --nats-user and a password (${ENV.natsPassword} or --nats-password-file)`);
  }
  if (natsToken !== undefined && o.natsUser !== undefined) throw new KvgateError('invalid_config', 'NATS takes a user and password or a token, not both');
  const etcdTls = tlsFiles('etcd', o.etcdCaFile, o.etcdCertFile, o.etcdKeyFile);
  const natsTls = tlsFiles('nats', o.natsCaFile, o.natsCertFile, o.natsKeyFile);
  const clusterToken = readSecret('cluster-token-file', o.clusterTokenFile, ENV.clusterToken, env);
  const engineApiKey = readSecret('engine-api-key-file', o.engineApiKeyFile, ENV.engineApiKey, env);
  return {
    ...(clusterToken !== undefined ? { clusterToken } : {}),
    ...(engineApiKey !== undefined ? { engineApiKey } : {}),
    etcd: { ...(o.etcdUsername !== undefined ? { auth: { username: o.etcdUsername, password: etcdPassword! } } : {}), ...(etcdTls ? { tls: etcdTls } : {}) },
    nats: {
      ...(o.natsUser !== undefined ? { user: o.natsUser, pass: natsPass! } : {}),
      ...(natsToken !== undefined ? { token: natsToken } : {}),
      ...(natsTls ? { tls: natsTls } : {}),
    },
  };
}
