// The dev server of tests/browser/test_ws_apps.py. What the test varies comes from the environment:
//   TTF_HMR_HOST / TTF_HMR_CLIENT_PORT / TTF_HMR_PROTOCOL -> server.hmr {host, clientPort, protocol}:
//     where the page's HMR client opens its socket (the tunnel's caller WebSocket URL, whose host
//     and port differ from the page's), never `path` (see the README's "WebSockets: frameworks")
//   TTF_HMR_TIMEOUT_MS -> server.hmr.timeout: how often the client pings its socket (default 30 s)
//   TTF_ALLOWED_HOSTS  -> server.allowedHosts (comma-separated; with ttf --keep-host)
const env = process.env;
const hmr = env.TTF_HMR_HOST ? {
  host: env.TTF_HMR_HOST,
  clientPort: Number(env.TTF_HMR_CLIENT_PORT),
  protocol: env.TTF_HMR_PROTOCOL || "ws",
  ...(env.TTF_HMR_TIMEOUT_MS ? { timeout: Number(env.TTF_HMR_TIMEOUT_MS) } : {}),
} : true;

export default {
  clearScreen: false,
  server: {
    host: "127.0.0.1",
    port: Number(env.TTF_VITE_PORT || 0),
    strictPort: true,
    hmr,
    allowedHosts: env.TTF_ALLOWED_HOSTS ? env.TTF_ALLOWED_HOSTS.split(",") : [],
  },
};
