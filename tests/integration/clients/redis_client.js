const assert = require('assert');
const { createClient, commandOptions } = require('redis');
(async () => {
  const port = Number(process.argv[2]);
  const k = `{${process.argv[3]}}`;
  const c = createClient({ url: `redis://127.0.0.1:${port}`, database: 1 });
  c.on('error', (e) => { console.error('client error', e); process.exit(1); });
  await c.connect();
  assert.strictEqual(await c.set(k + 'a', '1'), 'OK');
  assert.strictEqual(await c.get(k + 'a'), '1');
  assert.deepStrictEqual(await c.multi().set(k + 'x', '1').incr(k + 'x').exec(), ['OK', 2]);
  // Commands issued together are pipelined on the connection.
  assert.deepStrictEqual(
    await Promise.all([c.set(k + 'p', 'v'), c.get(k + 'p'), c.incr(k + 'x')]), ['OK', 'v', 3]);
  await c.executeIsolated(async (iso) => {
    await iso.watch(k + 'x');
    const v = Number(await iso.get(k + 'x'));
    assert.deepStrictEqual(await iso.multi().set(k + 'x', String(v + 1)).exec(), ['OK']);
  });
  const pusher = c.duplicate();
  await pusher.connect();
  setTimeout(() => { pusher.rPush(k + 'q', 'job'); }, 300);
  const popped = await c.blPop(commandOptions({ isolated: true }), k + 'q', 5);
  assert.deepStrictEqual(popped, { key: k + 'q', element: 'job' });
  const sub = c.duplicate();
  await sub.connect();
  let got;
  const message = new Promise((resolve) => { got = resolve; });
  await sub.subscribe(k + 'ch', (msg) => got(msg));
  assert.strictEqual(await pusher.publish(k + 'ch', 'hello'), 1);
  assert.strictEqual(await message, 'hello');
  await sub.unsubscribe(k + 'ch');
  assert.match(await c.info('server'), /redis_version:\d+\.\d+/);
  await Promise.all([c.quit(), pusher.quit(), sub.quit()]);
  console.log('node ok');
})().catch((e) => { console.error(e); process.exit(1); });
