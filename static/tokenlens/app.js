// Small helpers: an elapsed-time counter on pending work.
(function () {
  function tick() {
    const now = Date.now() / 1000;
    document.querySelectorAll(".elapsed[data-since]").forEach(function (el) {
      const since = parseFloat(el.dataset.since);
      if (!isNaN(since)) el.textContent = Math.max(0, Math.round(now - since)) + " s";
    });
  }
  setInterval(tick, 500);
})();
