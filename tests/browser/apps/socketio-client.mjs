// socket.io-client for tests/browser/test_ws_apps.py:  node socketio-client.mjs <base url> <tunnel id>
// Connects through the caller API's query form (path `/`, WebSocket transport, `?tunnel=<id>`),
// waits for the app's welcome, sends 20 messages one after the other (each after its ack), 20 at
// once (acks matched by id), then 50 numbered `seq` events at once, which the app echoes as events:
// `sequence` is the order their echoes arrived in (and any extra within 500 ms of the 50th, so a
// duplicate shows). Prints one JSON line.
import { io } from "socket.io-client";

const [url, tunnel] = process.argv.slice(2);
const socket = io(url, { path: "/", transports: ["websocket"], query: { tunnel }, reconnection: false, timeout: 30_000 });
const fail = (error) => { process.stdout.write(JSON.stringify({ error: String(error) }) + "\n"); process.exit(1); };
const deadline = setTimeout(() => fail("deadline"), 60_000);
socket.on("connect_error", (err) => fail(`connect_error: ${err.message}`));

const welcome = await new Promise((resolve) => socket.once("welcome", resolve));
const sequential = [];
for (let n = 0; n < 20; n++) sequential.push(await socket.timeout(20_000).emitWithAck("chat", n));
const burst = await Promise.all(Array.from({ length: 20 }, (_, n) => socket.timeout(20_000).emitWithAck("chat", 100 + n)));
const SEQUENCE = 50;
const sequence = [];
const echoed = new Promise((resolve) => socket.on("seq", (n) => { sequence.push(n); if (sequence.length === SEQUENCE) resolve(); }));
for (let n = 0; n < SEQUENCE; n++) socket.emit("seq", n);
await echoed;
await new Promise((resolve) => setTimeout(resolve, 500));  // a duplicate echo would arrive in here
clearTimeout(deadline);
process.stdout.write(JSON.stringify({ welcome, sequential, burst, sequence, transport: socket.io.engine.transport.name }) + "\n");
socket.disconnect();
setTimeout(() => process.exit(0), 200);  // let the close frame go out
