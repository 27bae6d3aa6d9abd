// kvgate behind a real nginx (Debian's nginx-light), configured as the README says: with
// --http-server uws, `proxy_pass` plus `proxy_http_version 1.1` (uWS does not speak
// HTTP/1.0, nginx's default to upstreams); with --http-server node, `proxy_pass` alone
// (HTTP/1.0, a connection per request, streams delimited by the close). Everything else
// is nginx's defaults, proxy buffering included (nginx still passes small SSE writes on as
// they come). The openai client talks to nginx: unary and
// streaming answers arrive whole, and a stream's events arrive as they are generated.

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSglang, type FakeSglang } from './fixtures/fake_sglang.js';
import { startNginx, type Nginx } from './fixtures/nginx.js';
import { qwen3, startStack, type Stack } from './fixtures/stack.js';
import type { HttpServerKind } from '../../src/http/wire.js';

const MODEL = 'Qwen/Qwen3-0.6B';
const TOKENS = 12;
const DELAY_MS = 40;

const setups: { httpServer: HttpServerKind; proxyConfig: string }[] = [
  { httpServer: 'uws', proxyConfig: 'proxy_http_version 1.1;' },
  { httpServer: 'node', proxyConfig: '' }, // nginx's defaults
];

describe.each(setups)('over --http-server $httpServer', ({ httpServer, proxyConfig }) => {
  let engine: FakeSglang;
  let stack: Stack;
  let nginx: Nginx;
  let client: OpenAI;

  beforeAll(async () => {
    engine = await startFakeSglang({ reply: () => [...Array.from({ length: TOKENS }, () => 279), 151645], tokenDelayMs: DELAY_MS, servedModelName: MODEL });
    stack = await startStack([engine], { model: qwen3(MODEL), httpServer });
    nginx = await startNginx(stack.url, proxyConfig);
    client = new OpenAI({ baseURL: `${nginx.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
  });

  afterAll(async () => {
    await nginx?.close();
    await stack?.close();
    await engine?.close();
  });

  const messages = [{ role: 'user' as const, content: 'count' }];

  describe('behind nginx', () => {
    it('serves models, unary chat and errors through the proxy', async () => {
      expect((await client.models.retrieve(MODEL)).id).toBe(MODEL);
      const r = await client.chat.completions.create({ model: MODEL, messages });
      expect(r.choices[0]!.message.content).toBe(' the'.repeat(TOKENS));
      await expect(client.chat.completions.create({ model: 'nope', messages })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    });

    it('streams events as they are generated, not buffered to the end', async () => {
      const stream = await client.chat.completions.create({ model: MODEL, messages, stream: true });
      const at: number[] = [];
      let text = '';
      for await (const c of stream) {
        const t = c.choices[0]?.delta.content;
        if (t) {
          at.push(performance.now());
          text += t;
        }
      }
      expect(text).toBe(' the'.repeat(TOKENS));
      // The engine spaces tokens DELAY_MS apart: buffered, they would all land at once.
      expect(at.at(-1)! - at[0]!).toBeGreaterThan((TOKENS - 2) * DELAY_MS * 0.5);
      expect(nginx.errorLog()).not.toMatch(/\[(error|crit|alert|emerg)\]/);
    });
  });
});
