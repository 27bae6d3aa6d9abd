// The `kvgate` command line as a user types it: flags are only the schema's own (never an
// Object.prototype member), --version, a bare `kvgate` is a usage error; and the logger both
// formats share.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../src/config.js';
import { createLogger, parseLogRecord } from '../../src/observability/log.js';
import { KVGATE } from '../e2e/stack.js';

const kvgate = (args: string[]) => spawnSync(KVGATE[0]!, [...KVGATE.slice(1), ...args], { encoding: 'utf8', timeout: 30_000 });

describe('parseCommandLine', () => {
  it('refuses Object.prototype members as flags', () => {
    for (const flag of ['--constructor', '--to-string', '--has-own-property', '--value-of', '--__proto__', '--no-constructor']) {
      expect(() => parseCommandLine('serve', [flag, 'x']), flag).toThrow(/unknown option --/);
      expect(() => parseCommandLine('mocker', [`${flag}=x`]), flag).toThrow(/unknown option --/);
    }
  });

  it('still parses the schema\'s own flags, --no-<bool> included', () => {
    const { options } = parseCommandLine('serve', ['--port', '9', '--no-kv-events', '--log-format', 'text']);
    expect(options).toMatchObject({ port: 9, kvEvents: false, logFormat: 'text', host: '127.0.0.1' });
    expect(() => parseCommandLine('serve', ['--log-format', 'xml'])).toThrow(/--log-format must be one of json, text/);
  });
});

describe('kvgate', () => {
  it('prints the version', () => {
    const r = kvgate(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
  });

  it('with no command prints help on stderr and exits non-zero', () => {
    const r = kvgate([]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/usage: kvgate <command> \[options\]/);
    expect(kvgate(['--help']).status).toBe(0);
  });

  it('refuses --constructor and --to-string with the reason', () => {
    for (const flag of ['--constructor', '--to-string']) {
      const r = kvgate(['mocker', flag, 'y']);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`unknown option ${flag} for 'kvgate mocker'`);
    }
    const unknown = kvgate(['constructor']);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/unknown command 'constructor'/);
  });
});

describe('logger', () => {
  it('writes JSON records, and forwards a child\'s records merged with a tag, its text as messages', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', write: (l) => lines.push(l) }, { role: 'frontend' });
    log.debug('hidden');
    log.info('hello', { n: 1 });
    log.forward(JSON.stringify({ ts: 't0', level: 'warn', msg: 'from a worker', role: 'worker', x: 2 }), { worker: 3 });
    log.forward(JSON.stringify({ ts: 't0', level: 'debug', msg: 'filtered', role: 'worker' }), { worker: 3 });
    log.forward('Traceback (most recent call last):', { worker: 3 });
    log.forward('{"not": "a record"}', { worker: 3 });
    const recs = lines.map((l) => parseLogRecord(l));
    expect(recs).toMatchObject([
      { level: 'info', msg: 'hello', role: 'frontend', n: 1 },
      { ts: 't0', level: 'warn', msg: 'from a worker', role: 'worker', x: 2, worker: 3 },
      { level: 'info', msg: 'Traceback (most recent call last):', role: 'frontend', worker: 3 },
      { level: 'info', msg: '{"not": "a record"}', role: 'frontend', worker: 3 },
    ]);
  });

  it('text format: one readable line per record', () => {
    const lines: string[] = [];
    const log = createLogger({ format: 'text', write: (l) => lines.push(l) }, { role: 'worker' });
    log.warn('engine exited', { code: 1, why: 'out of memory' });
    log.forward(JSON.stringify({ ts: '2026-01-01T00:00:00.000Z', level: 'info', msg: 'serving', role: 'mocker', pageSize: 16 }), { source: 'engine' });
    expect(lines[0]).toMatch(/^\S+Z WARN {2}\[worker\] engine exited code=1 why="out of memory"$/);
    expect(lines[1]).toBe('2026-01-01T00:00:00.000Z INFO  [mocker source=engine] serving pageSize=16');
  });
});
