// test/helpers/http-apps.ts send(): a connection dropped after the headers settles the request as a failure
// (status 0). It never settled before, so a load's stop() waited forever after a sidecar died mid-response.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { send } from '../helpers/http-apps.js';

test('send() answers status 0 when the server drops the connection mid-body', async () => {
  const srv = createServer((_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('partial');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const r = await Promise.race([send((srv.address() as AddressInfo).port, { timeoutMs: 5_000 }), new Promise<'hung'>((res) => setTimeout(() => res('hung'), 3_000))]);
    assert.notEqual(r, 'hung', 'send() never settled');
    assert.equal((r as { status: number }).status, 0);
    assert.match((r as { body: string }).body, /aborted after HTTP 200: partial/);
  } finally {
    srv.close();
  }
});
