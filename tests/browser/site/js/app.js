// A relative fetch, as a page served from /<id>/ (path URL) or / (subdomain URL) makes it.
(async () => {
  const list = document.getElementById("items");
  const response = await fetch(list.dataset.src || "data/items.json");
  const items = await response.json();
  list.replaceChildren(...items.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    li.className = "loaded";
    return li;
  }));
  document.body.dataset.ready = "yes";
})().catch((error) => { document.body.dataset.ready = "failed: " + error; });
