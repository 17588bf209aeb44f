// A Socket.IO server for tests/browser/test_ws_apps.py, on 127.0.0.1:<ephemeral>. Its path is `/`
// (the caller socket reaches the app at `/`, so Socket.IO's own `/socket.io/` cannot be used through
// the caller API until CloudFront passes paths) and it takes the WebSocket transport only (long
// polling would go to the page's host, not the caller API). One JSON line per event on stdout.
import { createServer } from "node:http";
import { Server } from "socket.io";

const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const http = createServer();
const io = new Server(http, { path: "/", transports: ["websocket"], serveClient: false });
io.on("connection", (socket) => {
  const { headers, url } = socket.request;
  print({ event: "connection", url, origin: headers.origin ?? null, query: socket.handshake.query });
  socket.emit("welcome", "héllo from the app ✓");  // the app speaks first
  const order = [];
  socket.on("chat", (n, ack) => { order.push(n); ack(`echo ${n}`); });
  // numbered events echoed as events (no ack ids to match them by): the order the app read them in
  // is the order it echoes them in, so the client's list shows both directions' order
  const sequence = [];
  socket.on("seq", (n) => { sequence.push(n); socket.emit("seq", n); });
  socket.on("disconnect", (reason) => print({ event: "disconnect", reason, order, sequence }));
});
http.listen(0, "127.0.0.1", () => print({ event: "listening", port: http.address().port }));
process.on("SIGTERM", () => { io.close(); process.exit(0); });
