// What every panel reads: the panels' container, the page's context (model, prompt, catalog)
// and the timings the benchmarks read. Null on a page without the panels.

export const root = document.getElementById("inside");
export const context = root ? JSON.parse(document.getElementById("inside-context").textContent) : null;
export const timings = (window.tokenlensTimings = {});
