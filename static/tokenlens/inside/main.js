// "Inside the model" panels of the exploration page, one module per panel. Each panel reads the
// REST API about the prompt followed by the current branch's tokens, and draws with Plotly;
// every chart has PNG, SVG, CSV and JSON downloads. Native ES modules, no bundler.

import { root } from "./context.js";
import { open, panels, wireTabs } from "./tabs.js";
import { createTokensPanel } from "./tokens.js";
import { createEmbeddingsPanel } from "./embeddings.js";
import { createAttentionPanel } from "./attention.js";
import { createGraphPanel } from "./attention-graph.js";
import { createLensPanel } from "./lens.js";
import { createAttributionPanel } from "./attribution.js";
import { createHeadsPanel } from "./heads.js";
import { createSamplingPanel } from "./sampling.js";
import { wireTurns } from "./turns.js";

if (root) {
  wireTabs();
  panels.tokens = createTokensPanel();
  panels.embeddings = createEmbeddingsPanel();
  panels.attention = createAttentionPanel();
  panels.graph = createGraphPanel();
  panels.layers = createLensPanel();
  panels.attribution = createAttributionPanel();
  panels.heads = createHeadsPanel();
  panels.sampling = createSamplingPanel();
  wireTurns();
  window.tokenlensInside = { open: open, panels: panels };
}
