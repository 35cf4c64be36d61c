// Search: a box in the sidebar that asks GET /api/search and lists the results, each a link that
// opens its room at the message. Snippets arrive as escaped text with <mark> around the matches;
// they are rebuilt here from text nodes and <mark> elements, never parsed as HTML.
import { el } from "./render.js";

const ENTITIES = { "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#x27;": "'" };

// The snippet's parts: [text, marked] pairs, with the escaped characters turned back into text.
export function snippetParts(snippet) {
  const parts = [];
  String(snippet || "").split(/(<mark>|<\/mark>)/).reduce((marked, piece) => {
    if (piece === "<mark>") return true;
    if (piece === "</mark>") return false;
    if (piece) parts.push([piece.replace(/&(lt|gt|amp|quot|#x27);/g, (e) => ENTITIES[e]), marked]);
    return marked;
  }, false);
  return parts;
}

// The link that opens a result: its room, scrolled to its seq; a direct message's conversation (the DM
// page does not scroll to one message, so no anchor).
export const resultHref = (m) => (m.kind === "direct" ? `/dm/${encodeURIComponent(m.peer)}`
  : `/room/${encodeURIComponent(m.room)}#seq-${m.seq}`);

export function createSearch({ container, api }) {
  const form = el("form", { class: "inline-form", role: "search", "aria-label": "Search messages" }, [
    el("label", { htmlFor: "side-search", text: "Search messages" }),
    el("div", { class: "input-row" }, [
      el("input", { id: "side-search", type: "search", maxLength: 200, required: true, autocomplete: "off",
                    placeholder: "words" }),
      el("button", { type: "submit", class: "button", text: "Search" }),
    ]),
  ]);
  const results = el("ul", { id: "search-results", class: "side-list", "aria-live": "polite" });
  container.append(el("section", { class: "side-section" }, [el("h2", { class: "side-title", text: "Search" }), form,
                                                              results]));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = form.querySelector("input").value.trim();
    if (!q) return;
    results.replaceChildren(el("li", { class: "empty", text: "Searching…" }));
    try {
      const data = await api(`/api/search?q=${encodeURIComponent(q)}&limit=20`);
      const found = data.results || [];
      results.replaceChildren(...(found.length ? found.map(resultItem)
        : [el("li", { class: "empty", text: "Nothing found." })]));
    } catch (err) {
      results.replaceChildren(el("li", { class: "empty", text: `Could not search: ${err.message || err}` }));
    }
  });
}

function resultItem(m) {
  const text = el("span", { class: "snippet" });
  for (const [piece, marked] of snippetParts(m.snippet)) text.append(marked ? el("mark", { text: piece }) : piece);
  if (m.kind === "direct") {
    return el("li", { class: "search-result", "data-peer": m.peer, "data-id": m.id }, [
      el("a", { href: resultHref(m), "aria-label": `${m.from} to ${m.to}, direct message: ${m.text}` }, [
        el("span", { class: "name", text: `@ ${m.peer} · ${m.from}` }), text]),
    ]);
  }
  return el("li", { class: "search-result", "data-room": m.room, "data-seq": String(m.seq) }, [
    el("a", { href: resultHref(m), "aria-label": `${m.user} in #${m.room}: ${m.text}` }, [
      el("span", { class: "name", text: `#${m.room} · ${m.user}` }), text]),
  ]);
}

// Scroll to the message the address names (#seq-N) once it is on screen; whether it was.
export function showLinkedMessage(hash) {
  const seq = /^#seq-(\d+)$/.exec(hash || "")?.[1];
  const node = seq && document.querySelector(`#messages li[data-seq="${seq}"]`);
  if (!node) return false;
  node.scrollIntoView({ block: "center" });
  node.setAttribute("tabindex", "-1");
  node.focus();
  return true;
}
