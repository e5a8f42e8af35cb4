/* Viewer: model switching and keyboard shortcuts (arrows: previous/next pair; a digit: that X-Map method). */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.querySelector("[data-xmap-viewer]");
  const select = document.querySelector("[data-model-select]");
  const viewer = root && root.xmapViewer;
  if (select && viewer) {
    if (viewer.state.model !== select.value && [...select.options].some((o) => o.value === viewer.state.model)) {
      select.value = viewer.state.model;
    }
    const highlight = () => document.querySelectorAll("[data-model-row]").forEach((row) => {
      row.classList.toggle("current", row.dataset.modelRow === select.value);
    });
    select.addEventListener("change", () => { highlight(); viewer.setModel(select.value); });
    highlight();
  }
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea") || event.metaKey || event.ctrlKey || event.altKey) return;
    const link = { ArrowLeft: "prev-pair", ArrowRight: "next-pair" }[event.key];
    if (link) {
      const anchor = document.getElementById(link);
      if (anchor && !anchor.classList.contains("disabled")) window.location.href = anchor.href;
    } else if (viewer && viewer.root.querySelector(`[data-control="method"] [data-value="${CSS.escape(event.key)}"]`)) {
      viewer.set("method", event.key);
    }
  });
});
