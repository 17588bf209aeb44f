// A graphql-ws server (the `ws` transport of graphql-ws), for tests/browser/test_ws_apps.py.
// Listens on 127.0.0.1:<ephemeral>, any path (the tunnel's caller socket reaches the app at `/`),
// and prints one JSON line per event on stdout: {"port"}, then "connect", "subscribe", "close".
import { WebSocketServer } from "ws";
import { useServer } from "graphql-ws/use/ws";
import { buildSchema } from "graphql";

const schema = buildSchema(`
  type Query { hello(name: String!): String }
  type Subscription { countdown(from: Int!): Int }
`);
const roots = {
  query: { hello: ({ name }) => `hello ${name}` },
  subscription: {
    countdown: async function* ({ from }) {
      for (let n = from; n >= 0; n--) yield { countdown: n };
    },
  },
};
const print = (event) => process.stdout.write(JSON.stringify(event) + "\n");

const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
useServer({
  schema,
  roots,
  onConnect: (ctx) => {
    const headers = ctx.extra.request.headers;
    print({ event: "connect", params: ctx.connectionParams ?? null, url: ctx.extra.request.url,
            host: headers.host ?? null, origin: headers.origin ?? null,
            protocol: ctx.extra.socket.protocol });
    return ctx.connectionParams?.token === "let-me-in";  // false: graphql-ws closes 4403 Forbidden
  },
  onSubscribe: (ctx, id, payload) => { print({ event: "subscribe", id, query: payload.query }); },
  onClose: (ctx, code, reason) => { print({ event: "close", code, reason: String(reason) }); },
}, server);
server.on("listening", () => print({ event: "listening", port: server.address().port }));
process.on("SIGTERM", () => { server.close(); process.exit(0); });
