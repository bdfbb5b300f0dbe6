// Building DOM nodes, token chips that react to a pick, and text as Plotly must be given it.

export function make(tag, attributes, text) {
  const node = document.createElement(tag);
  Object.entries(attributes || {}).forEach(function ([name, value]) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  });
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

export const MARKS = { " ": ["·", "space"], "\t": ["→", "tab"], "\n": ["↵", "newline"], "\r": ["␍", "carriage return"] };

// A strip of token chips (data-q = position) that acts on a click or on Enter/Space;
// `adding` is true when the shift (click: also ctrl/cmd) key asks to add to a selection.
export function onTokenPick(strip, act) {
  strip.addEventListener("click", function (event) {
    const node = event.target.closest("[data-q]");
    if (node) act(Number(node.dataset.q), event.shiftKey || event.ctrlKey || event.metaKey);
  });
  strip.addEventListener("keydown", function (event) {
    const node = event.target.closest("[data-q]");
    if (node && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      act(Number(node.dataset.q), event.shiftKey);
    }
  });
}

// Text with spaces, tabs and newlines drawn as visible marks (as DOM nodes, never as HTML).
export function visibleText(text, inline) {
  const fragment = document.createDocumentFragment();
  let plain = "";
  for (const char of text) {
    const mark = MARKS[char];
    if (!mark) { plain += char; continue; }
    if (plain) { fragment.appendChild(document.createTextNode(plain)); plain = ""; }
    fragment.appendChild(make("span", { class: "ws", title: mark[1] }, mark[0]));
    if (char === "\n" && !inline) fragment.appendChild(document.createElement("br"));
  }
  if (plain) fragment.appendChild(document.createTextNode(plain));
  return fragment;
}

// A token as a one-line label for chart axes and lists.
export function label(token) {
  return token.special ? token.text : token.text.replace(/[ \t\n\r]/g, function (char) { return MARKS[char][0]; });
}

// Text as Plotly must be given it to show it literally. Plotly reads a subset of HTML in
// every string it draws (tick labels, hover text, text on marks, annotations, legend names,
// titles): <b>, <i>, <sup>, <br>, <a href> and entities, and hover templates read %{...}.
// Vocabularies hold tokens such as "<b>" and "</a>", so every text from a model or a person
// goes through here on its way into a figure (never into the CSV and JSON downloads, which
// keep the raw text). Plotly turns the entities back into the characters.
export const PLOT_ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "%": "&#37;" };
export function plotText(text) {
  return String(text).replace(/[&<>%]/g, function (char) { return PLOT_ENTITIES[char]; });
}

// A token's one-line label, ready for a figure.
export function plotLabel(token) {
  return plotText(label(token));
}
