/* Viewer: the X-Maps of one model, or of two side by side (model A and B chosen in the card's head;
   B "none" hides the second viewer), and keyboard shortcuts (arrows: previous/next pair; a digit:
   that X-Map method, in every viewer shown). */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const viewers = {};
  document.querySelectorAll(".xv-side").forEach((side) => {
    const root = side.querySelector("[data-xmap-viewer]");
    if (root && root.xmapViewer) viewers[side.dataset.side] = { side, viewer: root.xmapViewer };
  });
  const highlight = () => {
    const a = viewers.a && viewers.a.viewer.state.model;
    document.querySelectorAll("[data-model-row]").forEach((row) => row.classList.toggle("current", row.dataset.modelRow === a));
  };
  const show = (name, model) => {
    const { side, viewer } = viewers[name];
    side.hidden = !model;
    side.querySelector("[data-side-title]").textContent = model;
    if (!model) {
      viewer.state.model = "";
      viewer.writeHash();
      return;
    }
    viewer.auto = true;  // a model picked here has its missing maps computed, with progress
    viewer.setModel(model);
  };
  document.querySelectorAll("[data-model-select]").forEach((select) => {
    const entry = viewers[select.dataset.modelSelect];
    if (!entry) return;
    const model = entry.viewer.state.model;  // from the URL's #fragment, if it names one of the options
    if (model && model !== select.value && [...select.options].some((o) => o.value === model)) {
      select.value = model;
      entry.side.querySelector("[data-side-title]").textContent = model;
      entry.side.hidden = false;
    }
    select.addEventListener("change", () => { show(select.dataset.modelSelect, select.value); highlight(); });
  });
  highlight();
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, select, textarea") || event.metaKey || event.ctrlKey || event.altKey) return;
    const link = { ArrowLeft: "prev-pair", ArrowRight: "next-pair" }[event.key];
    if (link) {
      const anchor = document.getElementById(link);
      if (anchor && !anchor.classList.contains("disabled")) window.location.href = anchor.href;
      return;
    }
    Object.values(viewers).forEach(({ side, viewer }) => {
      if (!side.hidden && viewer.root.querySelector(`[data-control="method"] [data-value="${CSS.escape(event.key)}"]`)) {
        viewer.set("method", event.key);
      }
    });
  });
});
