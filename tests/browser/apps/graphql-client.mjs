// graphql-ws's own client (in Node, over `ws`), for tests/browser/test_ws_apps.py:
//   node graphql-client.mjs <url> <token> [seconds]
// one socket: a countdown subscription, three more at once, then a query; prints one JSON line
// with what arrived, or {"error", "code", "closes"} and exits 1. After `seconds` (default 30) it
// gives up ({"error": "deadline"}): through the tunnel a refused client sees 1000, and graphql-ws's
// client reconnects after a 1000 for as long as an operation waits, whatever retryAttempts says.
import WebSocket from "ws";
import { createClient } from "graphql-ws";

const [url, token, seconds = "30"] = process.argv.slice(2);
const closes = [];  // the close code of each socket the client saw end
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { token },
  lazy: false,  // one socket for everything below, opened at once and closed by dispose()
  retryAttempts: 0,
  onNonLazyError: () => {},  // a refused connection is reported by the first iterate() below
  connectionAckWaitTimeout: 20_000,
  on: { closed: (event) => closes.push(event?.code ?? null) },
});

async function collect(query) {
  const out = [];
  for await (const result of client.iterate({ query })) {
    if (result.errors) throw new Error(JSON.stringify(result.errors));
    out.push(result.data);
  }
  return out;
}

const deadline = setTimeout(async () => {
  process.stdout.write(JSON.stringify({ error: "deadline", code: null, closes }) + "\n");
  await client.dispose();
  process.exit(1);
}, Number(seconds) * 1000);

try {
  const countdown = (await collect("subscription { countdown(from: 5) }")).map((d) => d.countdown);
  const parallel = (await Promise.all([3, 4, 6].map((from) => collect(`subscription { countdown(from: ${from}) }`))))
    .map((list) => list.map((d) => d.countdown));
  const hello = (await collect('{ hello(name: "wörld ✓") }'))[0].hello;
  await client.dispose();
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify({ countdown, parallel, hello, closes }) + "\n");
} catch (err) {
  process.stdout.write(JSON.stringify({ error: String(err?.reason ?? err?.message ?? err), code: err?.code ?? null, closes }) + "\n");
  await client.dispose();
  process.exit(1);
}
