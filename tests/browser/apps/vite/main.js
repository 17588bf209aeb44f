// Vite's HMR through the tunnel (tests/browser/test_ws_apps.py): message.js is edited by the test
// and its new text must arrive as a hot update (accept callback), not as a page reload.
import { message } from "./message.js";

const show = (text) => { document.getElementById("msg").textContent = text; };
show(message);
document.body.dataset.loadedAt = String(performance.timeOrigin);

if (import.meta.hot) {
  import.meta.hot.accept("./message.js", (mod) => {
    if (mod) { show(mod.message); document.body.dataset.hotUpdates = String(Number(document.body.dataset.hotUpdates || 0) + 1); }
  });
}
